/**
 * The errors of transient, as values. Each carries what a user needs to act on it and renders
 * as one sentence (`message`); the CLI edge maps them to exit codes. They are Schema classes
 * because they cross the JSON boundary (`--progress json` reports their tag and message).
 */
import * as Schema from "effect/Schema"

/** An Imagefile that does not parse or validate; the diagnostics are printed as they are. */
export class InvalidImagefile extends Schema.TaggedError<InvalidImagefile>()("InvalidImagefile", {
  file: Schema.String,
  count: Schema.Int,
  rendered: Schema.String,
}) {
  override get message() {
    return `${this.file} has ${this.count} error${this.count === 1 ? "" : "s"}`
  }
}

/** A file the user named cannot be read (the Imagefile, a COPY source...). */
export class FileUnreadable extends Schema.TaggedError<FileUnreadable>()("FileUnreadable", {
  path: Schema.String,
  reason: Schema.String,
}) {
  override get message() {
    return `Cannot read ${this.path}: ${this.reason}`
  }
}

/** A COPY/ADD source that is missing or leaves the build directory. */
export class ContextSourceError
  extends Schema.TaggedError<ContextSourceError>()("ContextSourceError", {
    source: Schema.String,
    reason: Schema.Literal("missing", "escapes", "unreadable", "special"),
    detail: Schema.optional(Schema.String),
    /** `file:line:column` of the instruction that names the source, when known. */
    location: Schema.optional(Schema.String),
  }) {
  override get message() {
    const detail = this.detail ? ` (${this.detail})` : ""
    const where = this.location ? `${this.location}: ` : ""
    if (this.reason === "special") {
      return `${where}COPY/ADD source '${this.source}' is ${this.detail}: only files, ` +
        "directories and symlinks can be copied"
    }
    const what = this.reason === "missing"
      ? "does not exist in the build directory"
      : this.reason === "escapes"
      ? "points outside the build directory"
      : "cannot be read"
    return `${where}COPY/ADD source '${this.source}' ${what}${detail}`
  }
}

/** An image spec that cannot be parsed (`Invalid image spec '...'` as in the original). */
export class InvalidImageSpec extends Schema.TaggedError<InvalidImageSpec>()("InvalidImageSpec", {
  spec: Schema.String,
  reason: Schema.String,
}) {
  override get message() {
    return this.reason
  }
}

/** An image of that name exists and `--force` was not given. */
export class ImageExists extends Schema.TaggedError<ImageExists>()("ImageExists", {
  name: Schema.String,
  path: Schema.String,
}) {
  override get message() {
    return `An image named '${this.name}' already exists at ${this.path} (use --force to replace it)`
  }
}

/** qemu-img (or its in-memory stand-in) failed. */
export class DiskImageError extends Schema.TaggedError<DiskImageError>()("DiskImageError", {
  operation: Schema.String,
  path: Schema.String,
  reason: Schema.String,
}) {
  override get message() {
    return `Cannot ${this.operation} ${this.path}: ${this.reason}`
  }
}

/** A build step failed (a RUN exited non-zero, INSPECT without a terminal, ...). */
export class StepFailed extends Schema.TaggedError<StepFailed>()("StepFailed", {
  step: Schema.Int,
  total: Schema.Int,
  instruction: Schema.String,
  reason: Schema.String,
  exitCode: Schema.optional(Schema.Int),
  lastOutput: Schema.optional(Schema.Array(Schema.String)),
}) {
  override get message() {
    return `Step ${this.step}/${this.total} : ${this.instruction} failed: ${this.reason}`
  }
}
