/**
 * TRANSIENT_NETWORK_TIMEOUT: seconds above 0, whole or decimal; the default when unset or
 * empty; anything else an error naming the variable. And the caps' wording.
 */
import assert from "node:assert/strict"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { parseNetworkTimeout } from "../../src/domain/network_timeout.ts"
import {
  countWithin,
  describeLimit,
  oversizedManifest,
} from "../../src/domain/registry_protocol.ts"
import { networkTimeoutSetting } from "../../src/layers/network_reads.ts"

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
