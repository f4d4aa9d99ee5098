/** Byte arrays in tests: cutting bytes into a stream of chunks. */
import * as Stream from "effect/Stream"

/** `bytes` as a stream of chunks of `size`. */
export const chunked = (bytes: Uint8Array, size: number) =>
  Stream.fromIterable(
    Array.from(
      { length: Math.ceil(bytes.length / size) },
      (_, i) => bytes.subarray(i * size, (i + 1) * size),
    ),
  )
