/**
 * On-the-fly decompression of fetched images, chosen by the content's magic bytes, never by the
 * name. gzip uses node:zlib through the platform's NodeStream; xz, bzip2 and zstd use the host's
 * tools. xz falls back to xz-decompress (xz-embedded compiled to WebAssembly) on a host without
 * `xz`: it decodes at about half the speed of `xz -dc` and on one thread only.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as NodeStream from "@effect/platform-node/NodeStream"
import * as Stream from "effect/Stream"
import * as zlib from "node:zlib"
import xzDecompress from "xz-decompress"
import {
  type Compression,
  DecompressionFailed,
  DecompressorMissing,
} from "../../domain/errors/store.ts"
import { type Decompressed, type Fetched, throughTool } from "./decompress_process.ts"
import { throughWebTransform } from "./web_transform.ts"

const MAGIC: ReadonlyArray<readonly [Compression, ReadonlyArray<number>]> = [
  ["gzip", [0x1f, 0x8b]],
  ["bzip2", [0x42, 0x5a, 0x68]],
  ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
]

const MAGIC_LENGTH = 6

/** The compression that `head` (the first bytes of a stream) starts with, if any. */
export const sniffCompression = (head: Uint8Array): Compression | undefined =>
  MAGIC.find(([, magic]) => magic.every((byte, i) => head[i] === byte))?.[0]

interface Head {
  readonly chunks: ReadonlyArray<Uint8Array>
  readonly length: number
  /** The stream ended within them. */
  readonly ended: boolean
}

/** The first chunks from `pull`, enough to hold the magic bytes (or all of a shorter stream). */
const readHead = <E, R>(
  pull: Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<E>, R>,
  head: Head = { chunks: [], length: 0, ended: false },
): Effect.Effect<Head, E, R> =>
  head.length >= MAGIC_LENGTH ? Effect.succeed(head) : Effect.matchEffect(pull, {
    onFailure: Option.match({
      onNone: () => Effect.succeed({ ...head, ended: true }),
      onSome: (error) => Effect.fail(error),
    }),
    onSuccess: (chunk) =>
      readHead(pull, {
        chunks: [...head.chunks, ...chunk],
        length: Chunk.reduce(chunk, head.length, (length, bytes) => length + bytes.length),
        ended: false,
      }),
  })

const firstBytes = ({ chunks, length }: Head): Uint8Array => {
  const bytes = new Uint8Array(Math.min(length, MAGIC_LENGTH))
  let offset = 0
  for (const chunk of chunks) {
    if (offset === bytes.length) break
    const part = chunk.subarray(0, bytes.length - offset)
    bytes.set(part, offset)
    offset += part.length
  }
  return bytes
}

const isMissing = (error: unknown): error is DecompressorMissing =>
  error instanceof DecompressorMissing

/** Larger than zlib's 16 KiB: each chunk costs a trip through the Stream. */
const ZLIB_CHUNK = 256 * 1024

/** A stream whose first bytes were read: its compression, if any, and all its bytes again. */
export interface Sniffed<E, R> {
  readonly compression: Compression | undefined
  readonly bytes: Stream.Stream<Uint8Array, E, R>
}

/** Read the first bytes of `self` to tell its compression; its bytes are all there after. */
export const sniffed = <E, R>(
  self: Stream.Stream<Uint8Array, E, R>,
): Effect.Effect<Sniffed<E, R>, E, R | Scope.Scope> =>
  Effect.gen(function* () {
    // Not Stream.peel: it turns failures of the rest of the stream into defects.
    const pull = yield* Stream.toPull(self)
    const head = yield* readHead(pull)
    const rest = head.ended ? Stream.empty : Stream.repeatEffectChunkOption(pull)
    return {
      compression: sniffCompression(firstBytes(head)),
      bytes: Stream.concat(Stream.fromIterable(head.chunks), rest),
    }
  })

/** The bytes of `sniffed`, decompressed when they are compressed. */
export const decoded = <E, R>(
  about: Fetched,
  { compression, bytes }: Sniffed<E, R>,
): Decompressed<E, R> => {
  // A decompressor queues its input without bound: it gets chunks of its own, since those of
  // a download may be overwritten after a few more (bulk_fetch.ts).
  const whole = compression === undefined ? bytes : Stream.map(bytes, (chunk) => chunk.slice())
  const failed = (compression: Compression) => (cause: unknown) =>
    new DecompressionFailed({ ...about, compression, cause })
  switch (compression) {
    case undefined:
      return whole
    // The platform's own bridge to node streams: the decompressor is destroyed when the
    // stream ends early (a cap, an interruption), which web-stream adapters got wrong.
    case "gzip":
      return NodeStream.pipeThroughDuplex(
        whole,
        () => zlib.createGunzip({ chunkSize: ZLIB_CHUNK }),
        failed("gzip"),
      )
    case "zstd":
      return throughTool(whole, about, "zstd")
    case "xz":
      // The tool fails to start before it reads anything, so `whole` is still unread.
      return Stream.catchAll(
        throughTool(whole, about, "xz"),
        (error) =>
          isMissing(error)
            ? throughWebTransform(
              whole,
              (input) => new xzDecompress.XzReadableStream(input),
              failed("xz"),
            )
            : Stream.fail(error),
      )
    case "bzip2":
      return throughTool(whole, about, "bzip2")
  }
}

/**
 * `self`, decompressed when its content is compressed (once: nested layers are left alone);
 * `onCompressed` is told which compression it found.
 */
export const decompressed = (
  about: Fetched,
  onCompressed: (compression: Compression) => Effect.Effect<void> = () => Effect.void,
) =>
<E, R>(
  self: Stream.Stream<Uint8Array, E, R>,
): Decompressed<E, R> =>
  Stream.unwrapScoped(Effect.gen(function* () {
    const sniff = yield* sniffed(self)
    if (sniff.compression !== undefined) yield* onCompressed(sniff.compression)
    return decoded(about, sniff)
  }))
