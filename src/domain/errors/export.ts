/**
 * Why an export wrote nothing: the disk it was writing to filled up, or a file could not be
 * written. A Schema value, as the other errors that reach `--progress json`.
 */
import * as Schema from "effect/Schema"

export class ExportFailed extends Schema.TaggedError<ExportFailed>()("ExportFailed", {
  /** The file the export was to write. */
  path: Schema.String,
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect),
}) {
  override get message() {
    return `Cannot export to ${this.path}: ${this.reason}`
  }
}

/** Whether an error's text says the disk is full (qemu-img's, the OS's, Deno's wording). */
export const isNoSpace = (text: string): boolean => /no space left|ENOSPC|os error 28/i.test(text)
