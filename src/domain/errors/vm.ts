/**
 * The helper VM's failures, as tagged errors that callers tell apart: the VM did not come up,
 * the channel to its agent broke, or a command in the guest failed. They cross the JSON
 * boundary (`--progress json`), hence Schema classes. Each reads as one sentence,
 * `Helper VM failed to OPERATION: REASON`, with the last console or command lines in `log`.
 */
import * as Schema from "effect/Schema"

const fields = {
  /** What the VM was doing, as words that follow "failed to": `boot`, `format partition 1...`. */
  operation: Schema.String,
  reason: Schema.String,
  /** The last lines of the serial console or of the command's output, when known. */
  log: Schema.optional(Schema.Array(Schema.String)),
  cause: Schema.optional(Schema.Defect),
}

/** The helper VM did not come up: QEMU missing or dead, no artifacts, a boot timeout. */
export class VmBootFailed extends Schema.TaggedError<VmBootFailed>()("VmBootFailed", fields) {
  override get message() {
    return `Helper VM failed to ${this.operation}: ${this.reason}`
  }
}

/** The channel to the guest agent broke: the guest stopped, or sent what the host refuses. */
export class AgentChannelBroken
  extends Schema.TaggedError<AgentChannelBroken>()("AgentChannelBroken", fields) {
  override get message() {
    return `Helper VM failed to ${this.operation}: ${this.reason}`
  }
}

/** A command the helper VM ran for a step exited non-zero (or the agent refused it). */
export class GuestCommandFailed
  extends Schema.TaggedError<GuestCommandFailed>()("GuestCommandFailed", {
    ...fields,
    /** The exit status, when the command ran. */
    exitCode: Schema.optional(Schema.Int),
  }) {
  override get message() {
    return `Helper VM failed to ${this.operation}: ${this.reason}`
  }
}

/**
 * QEMU paused the helper VM because the host could not read or write one of its files (a full
 * host filesystem, a file that vanished): the build cannot go on.
 */
export class VmHalted extends Schema.TaggedError<VmHalted>()("VmHalted", fields) {
  override get message() {
    return `Helper VM failed to ${this.operation}: ${this.reason}`
  }
}

export type VmError = VmBootFailed | AgentChannelBroken | GuestCommandFailed | VmHalted

export const isVmError = (error: unknown): error is VmError =>
  error instanceof VmBootFailed || error instanceof AgentChannelBroken ||
  error instanceof GuestCommandFailed || error instanceof VmHalted

/** `transient run`'s VM failed: QEMU would not start, stopped early, or the time ran out. */
export class RunFailed extends Schema.TaggedError<RunFailed>()("RunFailed", {
  reason: Schema.String,
  log: Schema.optional(Schema.Array(Schema.String)),
}) {
  override get message() {
    return `transient run: ${this.reason}`
  }
}

/** `transient run` needs UEFI firmware, and OVMF is not where Debian's `ovmf` package puts it. */
export class UefiFirmwareMissing
  extends Schema.TaggedError<UefiFirmwareMissing>()("UefiFirmwareMissing", {
    /** Where OVMF was looked for. */
    directory: Schema.String,
    /** The Secure Boot build was wanted. */
    secureBoot: Schema.Boolean,
  }) {
  override get message() {
    const what = this.secureBoot ? "UEFI firmware with Secure Boot (OVMF)" : "UEFI firmware (OVMF)"
    return `${what} is not installed: install Debian's ovmf package (looked in ${this.directory})`
  }
}
