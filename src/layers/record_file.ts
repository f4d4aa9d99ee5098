/**
 * Reading the small text records the store and the step cache keep beside their images: only a
 * regular file, never through a symlink, never waiting on a FIFO, never more than a cap. A
 * record that is anything else (a cache restored from a tarball, a hand-made mess) is as good as
 * missing, rather than a build that hangs or reads /dev/zero until memory runs out.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { constants } from "node:fs"
import { open } from "node:fs/promises"

/** More than any record the store or the cache writes. */
export const MAX_RECORD_BYTES = 1024 * 1024

export class RecordUnreadable extends Data.TaggedError("RecordUnreadable")<{
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `Cannot read the record ${this.path}: ${this.reason}`
  }
}

/** The text of the record at `path`, or RecordUnreadable. */
export const readRecordFile = (
  path: string,
  maxBytes = MAX_RECORD_BYTES,
): Effect.Effect<string, RecordUnreadable> =>
  Effect.tryPromise({
    try: async () => {
      // Not through a symlink; a FIFO opens at once and is then refused for what it is.
      const file = await open(
        path,
        constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
      )
      try {
        const info = await file.stat()
        if (!info.isFile()) throw new Error("it is not a regular file")
        if (info.size > maxBytes) throw new Error(`it is larger than ${maxBytes} bytes`)
        const bytes = new Uint8Array(maxBytes + 1)
        let length = 0
        while (length <= maxBytes) {
          const { bytesRead } = await file.read(bytes, length, bytes.length - length, null)
          if (bytesRead === 0) break
          length += bytesRead
        }
        if (length > maxBytes) throw new Error(`it is larger than ${maxBytes} bytes`)
        return new TextDecoder().decode(bytes.subarray(0, length))
      } finally {
        await file.close()
      }
    },
    catch: (error) =>
      new RecordUnreadable({
        path,
        reason: error instanceof Error ? error.message : String(error),
      }),
  }).pipe(Effect.withSpan("readRecordFile"))
