/**
 * A Sink writing bytes to a file, leaving all-zero blocks as holes: decompressed raw disk images
 * are mostly zeros, and writing them out would cost the disk space and time the image does not
 * need.
 */
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Sink from "effect/Sink"

/** The unit of holes: an all-zero block is skipped. */
const BLOCK = 64 * 1024
/** Bytes gathered before writing: runs of data blocks in it go out in one write. */
const BUFFER = 16 * BLOCK

const isZero = (block: Uint8Array): boolean => {
  // Compare eight bytes at a time where the block is aligned for it.
  const words = block.byteOffset % 8 === 0 ? Math.floor(block.length / 8) : 0
  if (words > 0) {
    const view = new BigUint64Array(block.buffer, block.byteOffset, words)
    for (let i = 0; i < view.length; i++) if (view[i] !== 0n) return false
  }
  for (let i = words * 8; i < block.length; i++) if (block[i] !== 0) return false
  return true
}

/** Write into `path` (created, must not exist) sparsely; the result is the bytes written. */
export const sparseFile = (
  path: string,
): Sink.Sink<number, Uint8Array, never, PlatformError, FileSystem.FileSystem> =>
  Sink.unwrapScoped(Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const file = yield* fs.open(path, { flag: "wx", mode: 0o600 })
    const buffer = new Uint8Array(BUFFER)
    let filled = 0
    let length = 0

    /** Write out the buffer: each run of data blocks with one write, zero blocks as holes. */
    const flush = Effect.suspend(() => {
      const writes: Array<Effect.Effect<void, PlatformError>> = []
      let run = 0
      for (let start = 0; start < filled; start += BLOCK) {
        const end = Math.min(start + BLOCK, filled)
        if (!isZero(buffer.subarray(start, end))) continue
        if (run < start) writes.push(file.writeAll(buffer.subarray(run, start)))
        writes.push(file.seek(end - start, "current"))
        run = end
      }
      if (run < filled) writes.push(file.writeAll(buffer.subarray(run, filled)))
      length += filled
      filled = 0
      return Effect.all(writes, { discard: true })
    })

    const write = (chunk: Uint8Array) =>
      Effect.gen(function* () {
        let offset = 0
        while (offset < chunk.length) {
          const take = Math.min(BUFFER - filled, chunk.length - offset)
          buffer.set(chunk.subarray(offset, offset + take), filled)
          filled += take
          offset += take
          if (filled === BUFFER) yield* flush
        }
      })

    const finish = Effect.gen(function* () {
      if (filled > 0) yield* flush
      // Trailing holes have no bytes to give the file its length.
      yield* file.truncate(length)
      return length
    })

    return Sink.forEach(write).pipe(Sink.mapEffect(() => finish))
  }))
