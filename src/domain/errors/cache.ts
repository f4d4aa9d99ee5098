/**
 * The step cache's errors. A build goes on without the cache where it can, so there is one: its
 * files could not be read or written.
 */
import * as Schema from "effect/Schema"
import { reasonOf } from "./reason.ts"

/**
 * The step cache could not be read or written; builds go on without it where they can. Like the
 * other I/O errors (StoreIoError, DiskImageError) it reads as an operation on a path, for a reason.
 */
export class CacheIoError extends Schema.TaggedError<CacheIoError>()("CacheIoError", {
  operation: Schema.Literal("open", "read", "lock", "write", "remove"),
  /** The cache, or the file the operation was on. */
  path: Schema.String,
  cause: Schema.Defect,
}) {
  override get message() {
    const what = {
      "open": `open the step cache at ${this.path}`,
      "read": `read ${this.path}`,
      "lock": `lock the step cache at ${this.path}`,
      "write": `write ${this.path}`,
      "remove": `remove ${this.path}`,
    }[this.operation]
    return `Cannot ${what}: ${this.reason}`
  }

  /** What went wrong, in the OS's or the library's words. */
  get reason(): string {
    return reasonOf(this.cause)
  }
}
