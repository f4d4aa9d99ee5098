/**
 * The errors of reading an Imagefile. They are Schema classes because they cross the JSON
 * boundary (`--progress json` reports their tag and message).
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
