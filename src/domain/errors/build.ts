/**
 * The errors of a build's own work: its context's sources and its steps. They cross the JSON
 * boundary (`--progress json`), hence Schema classes.
 */
import * as Schema from "effect/Schema"

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

/**
 * A container image ADD names could not be resolved (missing, no entry for the platform, a
 * registry that refuses): the container error, at the place of the source in the Imagefile.
 */
export class ContainerSourceFailed
  extends Schema.TaggedError<ContainerSourceFailed>()("ContainerSourceFailed", {
    source: Schema.String,
    /** The container error's own sentence, and its tag (for `--progress json` consumers). */
    reason: Schema.String,
    kind: Schema.String,
    location: Schema.optional(Schema.String),
  }) {
  override get message() {
    return `${this.location ? `${this.location}: ` : ""}ADD ${this.source}: ${this.reason}`
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
