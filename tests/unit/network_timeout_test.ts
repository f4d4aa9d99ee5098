/**
 * TRANSIENT_NETWORK_TIMEOUT: seconds above 0, whole or decimal; the default when unset or
 * empty; anything else an error naming the variable. The caps' wording, and bodies read whole
 * within a cap and a silence.
 */
import assert from "node:assert/strict"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import { parseNetworkTimeout } from "../../src/domain/network_timeout.ts"
import {
  countWithin,
  describeLimit,
  oversizedManifest,
} from "../../src/domain/registry_protocol.ts"
import { bodyStart, boundedBody, networkTimeoutSetting } from "../../src/layers/network_reads.ts"

const setting = (variables: Record<string, string>) =>
  Effect.runSync(
    Effect.either(networkTimeoutSetting).pipe(
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(variables)))),
    ),
  )

Deno.test("the network timeout: seconds above 0, else undefined", () => {
  assert.equal(parseNetworkTimeout("30"), 30)
  assert.equal(parseNetworkTimeout(" 2.5 "), 2.5)
  for (const text of ["0", "-1", "soon", "1e3", "", "1.", "Infinity"]) {
    assert.equal(parseNetworkTimeout(text), undefined, text)
  }
})

Deno.test("TRANSIENT_NETWORK_TIMEOUT: the default, the value, or an error naming it", () => {
  assert.deepEqual(setting({}), Either.right(Duration.seconds(30)))
  assert.deepEqual(setting({ TRANSIENT_NETWORK_TIMEOUT: "" }), Either.right(Duration.seconds(30)))
  assert.deepEqual(
    setting({ TRANSIENT_NETWORK_TIMEOUT: "1.5" }),
    Either.right(Duration.seconds(1.5)),
  )
  const invalid = setting({ TRANSIENT_NETWORK_TIMEOUT: "0" })
  assert.ok(Either.isLeft(invalid))
  assert.match(
    String(invalid.left),
    /TRANSIENT_NETWORK_TIMEOUT must be a number of seconds above 0 \(got '0'\)/,
  )
})

Deno.test("caps: a count past the limit is refused, and messages name the limit", () => {
  assert.equal(countWithin(10, 5, 15), 15)
  assert.equal(countWithin(10, 6, 15), undefined)
  assert.equal(describeLimit(4 * 1024 * 1024), "4 MiB")
  assert.equal(describeLimit(64 * 1024), "64 KiB")
  assert.equal(describeLimit(1000), "1000 bytes")
  assert.equal(
    oversizedManifest(4 * 1024 * 1024, 5_000_000),
    "a 5000000-byte manifest (the limit is 4 MiB)",
  )
  assert.equal(
    oversizedManifest(4 * 1024 * 1024),
    "a manifest sent without a length ran past the 4 MiB limit",
  )
})

const pieces = (count: number, size: number) =>
  Stream.fromIterable(Array.from({ length: count }, (_, i) => new Uint8Array(size).fill(i)))
/** `count` pieces, then a silence that never ends. */
const thenSilence = (count: number, size: number) =>
  Stream.concat(pieces(count, size), Stream.never)

const limits = (limit: number) => ({
  limit,
  timeout: Duration.millis(50),
  tooLarge: () => "too large" as const,
  stalled: (cause: { readonly message: string }) => `stalled: ${cause.message}`,
})

Deno.test("boundedBody: the body within its cap; past it, or silent, an error", async () => {
  const whole = await Effect.runPromise(boundedBody(pieces(3, 10), limits(30)))
  assert.deepEqual([...whole], [
    ...new Uint8Array(10),
    ...new Uint8Array(10).fill(1),
    ...new Uint8Array(10).fill(2),
  ])
  assert.deepEqual(
    await Effect.runPromise(Effect.flip(boundedBody(pieces(4, 10), limits(30)))),
    "too large",
  )
  assert.deepEqual(
    await Effect.runPromise(Effect.flip(boundedBody(thenSilence(1, 10), limits(30)))),
    "stalled: no byte for 0.05 s (TRANSIENT_NETWORK_TIMEOUT sets how long to wait)",
  )
})

Deno.test("bodyStart: the first bytes up to the limit, or what came before a silence", async () => {
  assert.equal(
    (await Effect.runPromise(bodyStart(pieces(3, 40), 64, Duration.seconds(1)))).length,
    64,
  )
  assert.equal(
    (await Effect.runPromise(bodyStart(pieces(1, 40), 64, Duration.seconds(1)))).length,
    40,
  )
  // The limit reached: the endless rest is not waited for.
  assert.equal(
    (await Effect.runPromise(bodyStart(thenSilence(2, 40), 64, Duration.hours(1)))).length,
    64,
  )
  assert.equal(
    (await Effect.runPromise(bodyStart(thenSilence(1, 10), 64, Duration.millis(50)))).length,
    10,
  )
})
