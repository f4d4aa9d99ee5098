/** The framing shared by host and agent: encoding, incremental decoding, limits. */
import assert from "node:assert/strict"
import {
  chunks,
  decodePayload,
  encodeDataFrame,
  encodeJsonFrame,
  FrameDecoder,
  KIND_DATA,
  MAX_CHUNK_BYTES,
  MAX_FRAME_BYTES,
} from "../../src/domain/guest/frame.ts"
import { concatBytes as concat } from "../../src/domain/bytes.ts"

const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i)

const sample = [
  encodeJsonFrame({ _tag: "hello", version: 1 }),
  encodeDataFrame("stdout", 7, allBytes),
  encodeDataFrame("stderr", 0xffff_ffff, new Uint8Array(0)),
  encodeJsonFrame({ _tag: "exit", id: 7, code: 3, text: "é ✓" }),
]
const wire = concat(sample)
const expected = sample.map((frame) => frame.subarray(4))

Deno.test("a payload is announced by its big-endian length", () => {
  const frame = encodeJsonFrame({ a: 1 })
  const length = new DataView(frame.buffer).getUint32(0)
  assert.deepStrictEqual(length, frame.length - 4)
  assert.deepStrictEqual(decodePayload(frame.subarray(4)), { kind: "json", text: '{"a":1}' })
})

Deno.test("data frames carry bytes verbatim, without base64", () => {
  const frame = encodeDataFrame("stderr", 42, allBytes)
  assert.deepStrictEqual(frame.length, 4 + 6 + 256)
  assert.deepStrictEqual(frame[4], KIND_DATA)
  assert.deepStrictEqual(decodePayload(frame.subarray(4)), {
    kind: "data",
    stream: "stderr",
    id: 42,
    data: allBytes,
  })
})

Deno.test("frames split at every byte boundary decode to the same payloads", () => {
  for (let cut = 0; cut <= wire.length; cut++) {
    const decoder = new FrameDecoder()
    const first = decoder.push(wire.subarray(0, cut))
    const second = decoder.push(wire.subarray(cut))
    assert.deepStrictEqual([...first.frames, ...second.frames], expected, `cut at ${cut}`)
    assert.deepStrictEqual(decoder.buffered, 0)
  }
})

Deno.test("frames fed one byte at a time decode to the same payloads", () => {
  const decoder = new FrameDecoder()
  const frames = []
  for (const byte of wire) frames.push(...decoder.push(Uint8Array.of(byte)).frames)
  assert.deepStrictEqual(frames, expected)
})

Deno.test("an oversize length is refused from its header, before any payload is buffered", () => {
  const decoder = new FrameDecoder()
  const header = new Uint8Array(4)
  new DataView(header.buffer).setUint32(0, MAX_FRAME_BYTES + 1)
  const result = decoder.push(concat([sample[0]!, header]))
  assert.deepStrictEqual(result.frames, [expected[0]])
  assert.deepStrictEqual(result.oversize, MAX_FRAME_BYTES + 1)
  assert.deepStrictEqual(decoder.buffered, 0)
  // Once failed it stays failed and holds nothing, whatever follows.
  const later = decoder.push(new Uint8Array(4096))
  assert.deepStrictEqual(later, { frames: [], oversize: MAX_FRAME_BYTES + 1 })
  assert.deepStrictEqual(decoder.buffered, 0)
})

Deno.test("a frame of exactly the limit is accepted and partial frames stay bounded", () => {
  const payload = new Uint8Array(MAX_FRAME_BYTES).fill(9)
  const header = new Uint8Array(4)
  new DataView(header.buffer).setUint32(0, MAX_FRAME_BYTES)
  const decoder = new FrameDecoder()
  assert.deepStrictEqual(decoder.push(header).frames, [])
  assert.deepStrictEqual(decoder.push(payload.subarray(0, 1000)).frames, [])
  assert.ok(decoder.buffered <= 4 + MAX_FRAME_BYTES)
  const { frames } = decoder.push(payload.subarray(1000))
  assert.deepStrictEqual(frames.length, 1)
  assert.deepStrictEqual(frames[0]!.length, MAX_FRAME_BYTES)
})

Deno.test("encoders refuse what does not fit in one frame", () => {
  assert.throws(() => encodeDataFrame("stdout", 1, new Uint8Array(MAX_CHUNK_BYTES + 1)), RangeError)
  encodeDataFrame("stdout", 1, new Uint8Array(MAX_CHUNK_BYTES))
  assert.throws(() => encodeJsonFrame({ big: "x".repeat(MAX_FRAME_BYTES) }), RangeError)
})

Deno.test("chunks cuts data into frame-sized pieces without losing bytes", () => {
  const data = new Uint8Array(MAX_CHUNK_BYTES * 2 + 5).map((_, i) => i % 251)
  const pieces = chunks(data)
  assert.deepStrictEqual(pieces.map((p) => p.length), [MAX_CHUNK_BYTES, MAX_CHUNK_BYTES, 5])
  assert.deepStrictEqual(concat(pieces), data)
  assert.deepStrictEqual(chunks(new Uint8Array(0)), [])
})

Deno.test("malformed payloads are reported, never thrown", () => {
  assert.deepStrictEqual(decodePayload(new Uint8Array(0)), {
    kind: "invalid",
    reason: "an empty frame",
  })
  assert.deepStrictEqual(decodePayload(Uint8Array.of(9, 1)).kind, "invalid")
  assert.deepStrictEqual(decodePayload(Uint8Array.of(1, 0xff, 0xfe)), {
    kind: "invalid",
    reason: "a message that is not valid UTF-8",
  })
  assert.deepStrictEqual(decodePayload(Uint8Array.of(2, 1, 0)).kind, "invalid")
  assert.deepStrictEqual(decodePayload(Uint8Array.of(2, 7, 0, 0, 0, 1)), {
    kind: "invalid",
    reason: "a data frame for unknown stream 7",
  })
})
