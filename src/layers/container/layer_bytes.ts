/**
 * A layer's bytes as a consumer may trust them: hashed as they pass and held back by one chunk,
 * so that a digest mismatch fails the stream before its last chunk (a consumer never sees a
 * layer that looks complete); decompressed on the host (gzip, zstd, or none), told by the bytes'
 * magic and checked against what the media type says.
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import * as zlib from "node:zlib"
import type { LayerCompression } from "../../domain/container_image.ts"
import { sniffed } from "../store/decompress.ts"

/** Larger than zlib's 16 KiB: each chunk costs a trip through the Stream. */
const ZLIB_CHUNK = 256 * 1024

/**
 * `self`, its sha256 checked against `digest` at its end: its last chunk is emitted only when
 * they agree, else the stream fails with `onMismatch(actual)`. Chunks are copied, as a
 * registry's may be buffers it reuses.
 */
export const verifiedAtEnd =
  <E2>(digest: string, onMismatch: (actual: string) => E2) =>
  <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | E2, R> =>
    Stream.suspend(() => {
      const hash = createHash("sha256")
      let held: Uint8Array | undefined
      return self.pipe(
        Stream.mapConcat((chunk) => {
          hash.update(chunk)
          const ready = held === undefined ? [] : [held]
          held = chunk.slice()
          return ready
        }),
        Stream.concat(Stream.suspend(() => {
          const actual = `sha256:${hash.digest("hex")}`
          if (actual !== digest) return Stream.fail(onMismatch(actual))
          return held === undefined ? Stream.empty : Stream.make(held)
        })),
      )
    })

/** `self` with its last chunk held back until it ends well: a failure at its end loses it. */
export const lastChunkHeld = <E, R>(
  self: Stream.Stream<Uint8Array, E, R>,
): Stream.Stream<Uint8Array, E, R> =>
  Stream.suspend(() => {
    let held: Uint8Array | undefined
    return self.pipe(
      Stream.mapConcat((chunk) => {
        const ready = held === undefined ? [] : [held]
        held = chunk
        return ready
      }),
      Stream.concat(Stream.suspend(() => held === undefined ? Stream.empty : Stream.make(held))),
    )
  })

/**
 * The uncompressed bytes of `self`, whose media type says `declared`: the magic bytes decide,
 * and a layer declared compressed whose bytes are not (or are compressed otherwise) is refused
 * with `onUndecodable`. A layer declared uncompressed may be gzip'd or zstd'd (`docker save`
 * writes either).
 */
export const uncompressed = <E2>(
  declared: LayerCompression,
  onUndecodable: (reason: string) => E2,
) =>
<E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | E2, R> =>
  Stream.unwrapScoped(Effect.gen(function* () {
    const sniff = yield* sniffed(self)
    const found = sniff.compression ?? "none"
    if (found !== "gzip" && found !== "zstd" && found !== "none") {
      return Stream.fail(onUndecodable(`its bytes are ${found}, which a layer may not be`))
    }
    if (declared !== "none" && found !== declared) {
      return Stream.fail(
        onUndecodable(
          `its media type says ${declared}, but its bytes are ${
            found === "none" ? "not compressed" : found
          }`,
        ),
      )
    }
    const failed = (cause: unknown) =>
      onUndecodable(cause instanceof Error ? cause.message : String(cause))
    switch (found) {
      case "none":
        return sniff.bytes
      // The platform's bridge to node streams destroys the decompressor when the stream ends early.
      case "gzip":
        return NodeStream.pipeThroughDuplex(
          sniff.bytes,
          () => zlib.createGunzip({ chunkSize: ZLIB_CHUNK }),
          failed,
        )
      case "zstd":
        return NodeStream.pipeThroughDuplex(
          sniff.bytes,
          () => zlib.createZstdDecompress({ chunkSize: ZLIB_CHUNK }),
          failed,
        )
    }
  }))
