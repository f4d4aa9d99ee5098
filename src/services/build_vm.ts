/**
 * BuildVm: the helper VM a build runs in. `boot` yields a scoped VmSession that performs guest
 * operations (src/domain/guest/operation.ts): the QEMU layer runs their commands through the
 * agent, the memory layer models them on a simulated disk. Closing the scope unmounts the
 * image and stops the VM.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { VmError } from "../domain/errors/vm.ts"
import type { GuestOperation } from "../domain/guest/operation.ts"
import type { OutputStream } from "./reporter.ts"

export type Accel = "auto" | "kvm" | "tcg"

export interface BootOptions {
  /** The working qcow2, attached as the guest's one SCSI disk (`/dev/sda`). */
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

/** The operations a session performs whole; RUN, INSPECT and layers have their own entries. */
export type SessionOperation = Exclude<
  GuestOperation,
  { readonly _tag: "Run" | "Shell" | "ApplyLayer" }
>

export type ApplyLayerOperation = Extract<GuestOperation, { readonly _tag: "ApplyLayer" }>

export interface RunRequest {
  readonly command: string
  /** Called with each chunk of output as it arrives. */
  readonly onOutput: (stream: OutputStream, chunk: Uint8Array) => Effect.Effect<void>
}

export interface VmSession {
  /** Perform one operation; a failure names the operation, the command and its last output. */
  readonly perform: (operation: SessionOperation) => Effect.Effect<void, VmError>
  /** RUN, its output streamed as it comes; returns the command's exit status. */
  readonly run: (request: RunRequest) => Effect.Effect<number, VmError>
  /**
   * Apply one container-image layer, `tar` (its uncompressed bytes) streamed to the guest as it
   * is read. A failure of `tar` itself (a layer whose digest does not match) is the failure,
   * rather than what the guest made of a cut stream.
   */
  readonly applyLayer: <E>(
    operation: ApplyLayerOperation,
    tar: Stream.Stream<Uint8Array, E>,
  ) => Effect.Effect<void, VmError | E>
  /** INSPECT: an interactive shell in the build root on the user's terminal; its status. */
  readonly shell: Effect.Effect<number, VmError>
  /**
   * Close the disk's current file as a layer: the image's filesystems are frozen, `next` (a
   * new qcow2 backed by the current file) becomes the file the VM writes, and they are thawed.
   * The current file is never written again.
   */
  readonly snapshot: (next: string) => Effect.Effect<void, VmError>
}

export interface BuildVmShape {
  /** What the helper VM runs (its artifacts' digest), for step-cache keys. */
  readonly identity: string
  readonly boot: (options: BootOptions) => Effect.Effect<VmSession, VmError, Scope.Scope>
}

export class BuildVm extends Context.Tag("transient/BuildVm")<BuildVm, BuildVmShape>() {}
