/**
 * The bytes of a blob to upload (domain/blob_content.ts), readable again from any offset: read
 * into a ring of buffers (bulk_fetch.ts), so that a disk of gigabytes goes out without a buffer
 * made per chunk.
 */
import type { PlatformError } from "@effect/platform/Error"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { type BlobContent, contentSize, segmentSize } from "../../domain/blob_content.ts"
import { BufferRing } from "../bulk_fetch.ts"

export interface ContentReader {
  readonly size: number
  /**
   * The bytes in [start, end), as a stream of chunks in a ring of buffers: a chunk is
   * overwritten `RING_CHUNKS` chunks later. An upload whose sent bytes differ from those hashed
   * is refused by the registry's digest check, never stored.
   */
  readonly read: (start: number, end: number) => Stream.Stream<Uint8Array, PlatformError>
}

/** Fill `target` from `file` at `position`; stops early only at the end of the file. */
const readFileInto = (file: FileSystem.File, position: number, target: Uint8Array) =>
  Effect.gen(function* () {
    yield* file.seek(position, "start")
    let filled = 0
    while (filled < target.length) {
      const count = Number(yield* file.read(target.subarray(filled)))
      if (count === 0) break
      filled += count
    }
    return filled
  })

/** Fill `target` with the bytes from `start` on (fewer at the content's end); how many. */
const readInto = (content: BlobContent<FileSystem.File>, size: number) =>
(
  start: number,
  target: Uint8Array,
) =>
  Effect.gen(function* () {
    const end = Math.min(size, start + target.length)
    let offset = 0
    for (const segment of content) {
      const length = segmentSize(segment)
      const from = Math.max(start, offset)
      const to = Math.min(end, offset + length)
      if (from < to) {
        const into = target.subarray(from - start, to - start)
        if (segment._tag === "Bytes") {
          into.set(segment.bytes.subarray(from - offset, to - offset))
        } else {
          const got = yield* readFileInto(segment.file, from - offset, into)
          // The file shrank: what it has (the digest check refuses the upload).
          if (got < into.length) return from - start + got
        }
      }
      offset += length
    }
    return Math.max(0, end - start)
  })

/** A reader of `content`. */
export const contentReader = (content: BlobContent<FileSystem.File>): ContentReader => {
  const size = contentSize(content)
  const fill = readInto(content, size)
  const read = (start: number, end: number) =>
    Stream.suspend(() => {
      const ring = new BufferRing()
      return Stream.unfoldEffect(start, (offset) => {
        if (offset >= end) return Effect.succeed(Option.none())
        const chunk = ring.take().subarray(0, Math.min(ring.size, end - offset))
        return Effect.map(
          fill(offset, chunk),
          (count) =>
            count === 0
              ? Option.none()
              : Option.some([chunk.subarray(0, count), offset + count] as const),
        )
      })
    })
  return { size, read }
}
