/** Byte arrays in tests: joining chunks, and cutting bytes into a stream of chunks. */
import * as Stream from "effect/Stream"

/** Join byte chunks into one array. */
export const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

/** `bytes` as a stream of chunks of `size`. */
export const chunked = (bytes: Uint8Array, size: number) =>
  Stream.fromIterable(
    Array.from(
      { length: Math.ceil(bytes.length / size) },
      (_, i) => bytes.subarray(i * size, (i + 1) * size),
    ),
  )
