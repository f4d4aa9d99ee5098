/**
 * VmRunner: boots a built image for `transient run`, its console on the terminal or watched for
 * a line that says the image is up. The image itself is never written.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { DiskImageError } from "../domain/errors/store.ts"
import type { RunFailed, UefiFirmwareMissing } from "../domain/errors/vm.ts"
import type { Firmware } from "../domain/firmware.ts"
import type { PortForward, RunOutcome } from "../domain/vm_run.ts"
import type { Accel } from "./build_vm.ts"

export interface RunOptions {
  /** The qcow2 to boot (never written). */
  readonly image: string
  readonly accel: Accel
  /** SeaBIOS, or OVMF with a throw-away copy of its variable store. */
  readonly firmware: Firmware
  /** With UEFI: the Secure Boot build, Microsoft's keys enrolled. */
  readonly secureBoot: boolean
  readonly cpus?: number
  readonly memoryMiB: number
  readonly network: boolean
  readonly forwards: ReadonlyArray<PortForward>
  /** Watch the console for this and end (successfully) as soon as it appears. */
  readonly until?: RegExp
  /** Give up after this long (exit 1). */
  readonly timeoutSeconds?: number
  /** Also write everything the console prints here. */
  readonly consoleLog?: string
  /** Show the screen over VNC at this address (`127.0.0.1:N`, display N). */
  readonly vnc?: string
}

export interface VmRunnerShape {
  /** Boot `options.image` until the console matches, the VM powers off, or the user leaves. */
  readonly run: (options: RunOptions) => Effect.Effect<
    RunOutcome,
    RunFailed | UefiFirmwareMissing | DiskImageError
  >
}

export class VmRunner extends Context.Tag("transient/VmRunner")<VmRunner, VmRunnerShape>() {}
