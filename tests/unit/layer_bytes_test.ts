/**
 * A layer's bytes on their way to a consumer: a digest mismatch fails the stream before its last
 * chunk, so no consumer sees a complete layer; gzip and zstd are undone as their magic says, and
 * a layer whose bytes contradict its media type is refused.
 */
import assert from "node:assert/strict"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import * as zlib from "node:zlib"
import { uncompressed, verifiedAtEnd } from "../../src/layers/container/layer_bytes.ts"
import { runTest } from "../support/effect.ts"

const bytesOf = (length: number, seed = 0) =>
  Uint8Array.from({ length }, (_, i) => (i * 31 + seed) % 251)
const digestOf = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`
const chunks = [bytesOf(100, 1), bytesOf(100, 2), bytesOf(100, 3)]
const whole = new Uint8Array(chunks.flatMap((chunk) => [...chunk]))

/** What the stream gave before it ended, and how it ended. */
const consumed = <E>(stream: Stream.Stream<Uint8Array, E>) =>
  Effect.gen(function* () {
    const seen: Array<Uint8Array> = []
    const ended = yield* Stream.runForEach(stream, (chunk) => Effect.sync(() => seen.push(chunk)))
      .pipe(Effect.either)
    return { seen, ended, bytes: seen.reduce((n, chunk) => n + chunk.length, 0) }
  })

Deno.test("bytes that hash to their digest all pass, in order", async () => {
  const got = await runTest(
    consumed(Stream.fromIterable(chunks).pipe(verifiedAtEnd(digestOf(whole), (a) => a))),
  )
  assert.ok(Either.isRight(got.ended))
  assert.deepEqual(new Uint8Array(got.seen.flatMap((chunk) => [...chunk])), whole)
})

Deno.test("a digest mismatch fails the stream before its last chunk", async () => {
  const wrong = `sha256:${"0".repeat(64)}`
  const got = await runTest(
    consumed(Stream.fromIterable(chunks).pipe(verifiedAtEnd(wrong, (actual) => actual))),
  )
  assert.deepEqual(got.ended, Either.left(digestOf(whole)))
  assert.equal(got.bytes, 200)
})

Deno.test("gzip and zstd layers come out as the tar they hold, told by their bytes", async () => {
  const tar = bytesOf(300_000)
  for (
    const [declared, compressed] of [
      ["gzip", zlib.gzipSync(tar)],
      ["zstd", zlib.zstdCompressSync(tar)],
      // docker save writes layers gzip'd or not, under one media type.
      ["none", zlib.gzipSync(tar)],
      ["none", tar],
    ] as const
  ) {
    const out = await runTest(
      Stream.fromIterable([compressed.subarray(0, 10), compressed.subarray(10)]).pipe(
        uncompressed(declared, (reason) => reason),
        Stream.runCollect,
        Effect.map((parts) => new Uint8Array(Chunk.toArray(parts).flatMap((part) => [...part]))),
      ),
    )
    assert.equal(digestOf(out), digestOf(tar), declared)
  }
})

Deno.test("a layer declared compressed whose bytes are not is refused", async () => {
  const got = await runTest(
    consumed(Stream.make(bytesOf(1000)).pipe(uncompressed("gzip", (reason) => reason))),
  )
  assert.deepEqual(
    got.ended,
    Either.left("its media type says gzip, but its bytes are not compressed"),
  )
  assert.equal(got.bytes, 0)
})
