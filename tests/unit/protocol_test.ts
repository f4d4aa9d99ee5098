/** The guest-agent messages: what the host accepts from the guest and what it sends. */
import assert from "node:assert/strict"
import * as Either from "effect/Either"
import { decodePayload, encodeDataFrame, encodeJsonFrame } from "../../src/domain/guest/frame.ts"
import {
  checkVersion,
  decodeGuestPayload,
  encodeHostMessage,
  PROTOCOL_VERSION,
} from "../../src/domain/guest/protocol.ts"

const payloadOf = (frame: Uint8Array) => frame.subarray(4)
const json = (value: unknown) => payloadOf(encodeJsonFrame(value))
const rawJson = (text: string) => Uint8Array.of(1, ...new TextEncoder().encode(text))

const decoded = (payload: Uint8Array) => {
  const result = decodeGuestPayload(payload)
  if (Either.isLeft(result)) throw new Error(`expected a message, got: ${result.left}`)
  return result.right
}
const refused = (payload: Uint8Array): string => {
  const result = decodeGuestPayload(payload)
  if (Either.isRight(result)) throw new Error(`expected a refusal, got ${JSON.stringify(result)}`)
  return result.left
}

Deno.test("the guest's messages decode", () => {
  assert.deepStrictEqual(
    decoded(json({ _tag: "hello", version: 1, agent: "deno 2", pid: 1, extra: true })),
    { _tag: "hello", version: 1, agent: "deno 2", pid: 1 },
  )
  assert.deepStrictEqual(decoded(json({ _tag: "exit", id: 4, code: 3 })), {
    _tag: "exit",
    id: 4,
    code: 3,
  })
  assert.deepStrictEqual(decoded(json({ _tag: "error", message: "no" })), {
    _tag: "error",
    message: "no",
  })
  assert.deepStrictEqual(decoded(json({ _tag: "goodbye" })), { _tag: "goodbye" })
  const bytes = Uint8Array.of(0, 255, 10)
  assert.deepStrictEqual(decoded(payloadOf(encodeDataFrame("stderr", 9, bytes))), {
    _tag: "stderr",
    id: 9,
    data: bytes,
  })
})

Deno.test("garbage and unknown messages are refused with a reason", () => {
  assert.equal(refused(rawJson("{not json")), "a message that is not valid JSON")
  assert.match(refused(json({ _tag: "launch-missiles" })), /invalid message.*launch-missiles/)
  assert.match(refused(json({ _tag: "exit", id: 1, code: 1.5 })), /invalid message.*code/)
  assert.match(refused(json({ _tag: "exit", id: -1, code: 0 })), /invalid message.*id/)
  assert.match(refused(json({ _tag: "exit", id: 1, code: 300 })), /invalid message/)
  assert.match(refused(json([1, 2, 3])), /invalid message/)
  assert.match(refused(json(null)), /invalid message/)
  assert.equal(refused(new Uint8Array(0)), "an empty frame")
  assert.equal(refused(Uint8Array.of(77)), "a frame of unknown kind 77")
  assert.equal(
    refused(payloadOf(encodeDataFrame("stdin", 1, new Uint8Array(1)))),
    "a stdin chunk",
  )
})

Deno.test("host messages encode: JSON for requests, binary frames for stdin", () => {
  const exec = encodeHostMessage({ _tag: "exec", id: 1, argv: ["ls", "-l"], cwd: "/" })
  assert.deepStrictEqual(JSON.parse((decodePayload(payloadOf(exec)) as { text: string }).text), {
    _tag: "exec",
    id: 1,
    argv: ["ls", "-l"],
    cwd: "/",
  })
  const stdin = encodeHostMessage({ _tag: "stdin", id: 2, data: Uint8Array.of(1, 2) })
  assert.deepStrictEqual(decodePayload(payloadOf(stdin)), {
    kind: "data",
    stream: "stdin",
    id: 2,
    data: Uint8Array.of(1, 2),
  })
})

Deno.test("a version mismatch is a clear sentence naming both versions", () => {
  assert.ok(Either.isRight(checkVersion({ _tag: "hello", version: PROTOCOL_VERSION })))
  const mismatch = checkVersion({ _tag: "hello", version: PROTOCOL_VERSION + 1 })
  assert.ok(Either.isLeft(mismatch))
  assert.match(mismatch.left, new RegExp(`version ${PROTOCOL_VERSION + 1}.*${PROTOCOL_VERSION}`))
  assert.match(mismatch.left, /deno task guest/)
})
