/**
 * BuildVm: the helper VM a build runs in. `boot` yields a scoped VmSession whose typed operations
 * the QEMU layer turns into guest commands (see src/domain/guest_commands.ts) and the memory
 * layer models on a simulated disk. Closing the scope syncs, unmounts and stops the VM.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { VmError } from "../domain/errors.ts"
import type { Filesystem } from "../domain/imagefile/ast.ts"
import type { DiskLayout, MountPoint } from "../domain/plan.ts"
import type { ContextEntry } from "./build_context.ts"
import type { OutputStream } from "./reporter.ts"

export type Accel = "auto" | "kvm" | "tcg"

export interface BootOptions {
  /** The working qcow2, attached as the first virtio disk (`/dev/vda` in the guest). */
  readonly disk: string
  /** BUILD_DIR, shared read-only with the guest. */
  readonly context: string
  readonly network: boolean
  readonly accel: Accel
  /** Virtual CPUs; by default 2 under KVM and 1 under TCG, where more slow emulation down. */
  readonly cpus?: number
  readonly memoryMiB: number
  readonly bootTimeoutSeconds: number
}

export interface FormatRequest {
  readonly partition: number
  readonly fs: Filesystem
  readonly options: ReadonlyArray<string>
}

export interface RunRequest {
  readonly command: string
  /** Called with each chunk of output as it arrives. */
  readonly onOutput: (stream: OutputStream, chunk: Uint8Array) => Effect.Effect<void>
}

export interface VmSession {
  /** Write the partition table and create every partition of `layout`. */
  readonly partitionDisk: (layout: DiskLayout) => Effect.Effect<void, VmError>
  readonly format: (request: FormatRequest) => Effect.Effect<void, VmError>
  /** Mount partitions under the build root, in the order given (shallowest first). */
  readonly mountPartitions: (mounts: ReadonlyArray<MountPoint>) => Effect.Effect<void, VmError>
  /** For `FROM <image>`: find the root filesystem (the one with /etc/fstab) and mount the rest. */
  readonly discoverRoot: Effect.Effect<void, VmError>
  /** Mount dev, dev/pts, dev/shm, proc, sys, run, tmp and resolv.conf in the build root. */
  readonly prepareChroot: Effect.Effect<void, VmError>
  /**
   * Copy sources into the image. A directory source copies its contents; with several sources,
   * or a destination ending in `/`, the destination is a directory. Modes are kept and missing
   * parents are created.
   */
  readonly copyIn: (
    request: { readonly sources: ReadonlyArray<ContextEntry>; readonly destination: string },
  ) => Effect.Effect<void, VmError>
  /** ADD: archives are extracted into the destination directory, other files copied. */
  readonly extract: (
    request: { readonly source: ContextEntry; readonly destination: string },
  ) => Effect.Effect<void, VmError>
  /** RUN: `/bin/sh -c COMMAND` as root in the build root; returns the exit status. */
  readonly run: (request: RunRequest) => Effect.Effect<number, VmError>
  /** INSPECT: an interactive shell in the build root on the user's terminal. */
  readonly shell: Effect.Effect<number, VmError>
  /** Flush everything written to the working disk. */
  readonly sync: Effect.Effect<void, VmError>
}

export interface BuildVmShape {
  readonly boot: (options: BootOptions) => Effect.Effect<VmSession, VmError, Scope.Scope>
}

export class BuildVm extends Context.Tag("transient/BuildVm")<BuildVm, BuildVmShape>() {}
