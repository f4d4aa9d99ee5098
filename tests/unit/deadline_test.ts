/** Deadlines that hold inside finalizers and uninterruptible regions, where clean-up runs. */
import assert from "node:assert/strict"
import * as Effect from "effect/Effect"
import { atMost, succeedsWithin } from "../../src/layers/deadline.ts"
import { runTest } from "../support/effect.ts"

Deno.test("atMost ends an effect that never ends, also when run uninterruptibly", async () => {
  const started = performance.now()
  const result = await runTest(Effect.uninterruptible(atMost(Effect.never, "50 millis")))
  assert.equal(result._tag, "Left")
  assert.ok(performance.now() - started < 2000)
})

Deno.test("atMost ends an effect in a finalizer", async () => {
  let outcome: string | undefined
  await runTest(
    Effect.scoped(
      Effect.addFinalizer(() =>
        atMost(Effect.never, "50 millis").pipe(Effect.map((result) => void (outcome = result._tag)))
      ),
    ),
  )
  assert.equal(outcome, "Left")
})

Deno.test("succeedsWithin tells a success in time from a failure and from a timeout", async () => {
  assert.equal(await runTest(succeedsWithin(Effect.succeed(1), "1 second")), true)
  assert.equal(await runTest(succeedsWithin(Effect.fail("no"), "1 second")), false)
  assert.equal(await runTest(succeedsWithin(Effect.sleep("1 second"), "20 millis")), false)
})
