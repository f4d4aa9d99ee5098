/**
 * The errors of transient, as values. Each carries what a user needs to act on it and renders
 * as one sentence (`message`); the CLI edge maps them to exit codes.
 */
import * as Data from "effect/Data"

/** An Imagefile that does not parse or validate; the diagnostics are printed as they are. */
export class InvalidImagefile extends Data.TaggedError("InvalidImagefile")<{
  readonly file: string
  readonly count: number
  readonly rendered: string
}> {
  override get message() {
    return `${this.file} has ${this.count} error${this.count === 1 ? "" : "s"}`
  }
}

/** A file the user named cannot be read (the Imagefile, a COPY source...). */
export class FileUnreadable extends Data.TaggedError("FileUnreadable")<{
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `Cannot read ${this.path}: ${this.reason}`
  }
}

/** A COPY/ADD source that is missing or leaves the build directory. */
export class ContextSourceError extends Data.TaggedError("ContextSourceError")<{
  readonly source: string
  readonly reason: "missing" | "escapes" | "unreadable"
  readonly detail?: string
  /** `file:line:column` of the instruction that names the source, when known. */
  readonly location?: string
}> {
  override get message() {
    const detail = this.detail ? ` (${this.detail})` : ""
    const what = this.reason === "missing"
      ? "does not exist in the build directory"
      : this.reason === "escapes"
      ? "points outside the build directory"
      : "cannot be read"
    const where = this.location ? `${this.location}: ` : ""
    return `${where}COPY/ADD source '${this.source}' ${what}${detail}`
  }
}

/** An image spec that cannot be parsed (`Invalid image spec '...'` as in the original). */
export class InvalidImageSpec extends Data.TaggedError("InvalidImageSpec")<{
  readonly spec: string
  readonly reason: string
}> {
  override get message() {
    return this.reason
  }
}

/** The image store could not find, fetch or write an image. */
export class StoreError extends Data.TaggedError("StoreError")<{
  readonly image: string
  readonly reason: string
}> {
  override get message() {
    return this.reason
  }
}

/** An image of that name exists and `--force` was not given. */
export class ImageExists extends Data.TaggedError("ImageExists")<{
  readonly name: string
  readonly path: string
}> {
  override get message() {
    return `An image named '${this.name}' already exists at ${this.path} (use --force to replace it)`
  }
}

/** qemu-img (or its in-memory stand-in) failed. */
export class DiskImageError extends Data.TaggedError("DiskImageError")<{
  readonly operation: string
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `Cannot ${this.operation} ${this.path}: ${this.reason}`
  }
}

/** The helper VM failed: boot, the agent channel, or a guest-side operation. */
export class VmError extends Data.TaggedError("VmError")<{
  readonly operation: string
  readonly reason: string
  /** The last lines of the serial console or of the command's output, when known. */
  readonly log?: ReadonlyArray<string>
}> {
  override get message() {
    return `Helper VM failed to ${this.operation}: ${this.reason}`
  }
}

/** A build step failed (a RUN exited non-zero, INSPECT without a terminal, ...). */
export class StepFailed extends Data.TaggedError("StepFailed")<{
  readonly step: number
  readonly total: number
  readonly instruction: string
  readonly reason: string
  readonly exitCode?: number
  readonly lastOutput?: ReadonlyArray<string>
}> {
  override get message() {
    return `Step ${this.step}/${this.total} : ${this.instruction} failed: ${this.reason}`
  }
}
