/**
 * The state shared by the memory layers: simulated disks (by host path), the image store's
 * names, and a log of every typed operation, which tests assert on.
 */
import type * as Effect from "effect/Effect"
import type { Filesystem, PartitionTable } from "../../domain/imagefile/ast.ts"
import type { PartitionLayout } from "../../domain/plan.ts"
import type { SimTree } from "./sim_fs.ts"

export interface SimFilesystem {
  readonly fs: Filesystem
  readonly options: ReadonlyArray<string>
  readonly tree: SimTree
}

export interface SimPartition {
  readonly layout: PartitionLayout
  filesystem?: SimFilesystem
}

export interface SimDisk {
  readonly sizeBytes: number
  table?: PartitionTable
  partitions: Array<SimPartition>
  /** The backing file name its header holds (a step-cache layer's parent); a copy has none. */
  backing?: string
}

/** Every operation the memory layers performed, in order. */
export type Operation =
  | { readonly op: "create-disk"; readonly path: string; readonly sizeBytes: number }
  | {
    readonly op: "convert"
    readonly from: string
    readonly to: string
    /** qemu-img's name of the format written, when not qcow2. */
    readonly format?: string
  }
  | { readonly op: "rebase"; readonly path: string; readonly backing: string }
  | { readonly op: "snapshot"; readonly layer: string; readonly next: string }
  | { readonly op: "boot"; readonly disk: string; readonly network: boolean }
  | { readonly op: "partition"; readonly table: PartitionTable; readonly count: number }
  | { readonly op: "format"; readonly partition: number; readonly fs: Filesystem }
  | { readonly op: "mount"; readonly partition: number; readonly path: string }
  | { readonly op: "discover-root"; readonly root: number }
  | { readonly op: "prepare-chroot" }
  | { readonly op: "copy"; readonly sources: ReadonlyArray<string>; readonly destination: string }
  | { readonly op: "extract"; readonly source: string; readonly destination: string }
  | {
    readonly op: "apply-layer"
    readonly source: string
    readonly layer: string
    readonly destination: string
  }
  | { readonly op: "run"; readonly command: string }
  | { readonly op: "shell" }
  | { readonly op: "sync" }
  | { readonly op: "release" }
  | { readonly op: "shutdown" }
  | { readonly op: "publish"; readonly name: string; readonly path: string }
  | { readonly op: "discard"; readonly path: string }

/** What a simulated RUN does: its output and exit status. */
export interface RunOutcome {
  readonly exitCode?: number
  readonly stdout?: string
  readonly stderr?: string
}

/** The guest as a RUN script sees it: the image's files through the mount table. */
export interface SimGuest {
  readonly read: (path: string) => Uint8Array | undefined
  readonly writeFile: (path: string, content: string | Uint8Array, mode?: number) => void
  readonly symlink: (path: string, target: string) => void
}

/** Tests decide what each RUN does; an Effect lets one block (to be interrupted) or take time. */
export type RunScript = (
  command: string,
  guest: SimGuest,
) => RunOutcome | Effect.Effect<RunOutcome>

export class MemoryWorld {
  readonly disks = new Map<string, SimDisk>()
  /** Store name -> disk path. */
  readonly images = new Map<string, string>()
  /** Small files the memory layers keep as text (store and cache records), by path. */
  readonly files = new Map<string, string>()
  readonly log: Array<Operation> = []
  /** Helper VM sessions booted and not yet shut down. */
  openSessions = 0
  runScript: RunScript = () => ({ exitCode: 0 })

  constructor(readonly storeRoot = "/store") {}

  record(operation: Operation): void {
    this.log.push(operation)
  }

  ops(): ReadonlyArray<string> {
    return this.log.map((entry) => entry.op)
  }
}
