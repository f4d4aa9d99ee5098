/**
 * Test helpers: run an Effect as a test body, failing the test with the pretty cause on a
 * failed Exit.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

/** Run `effect` to its value; a failure or defect fails the test with the whole cause. */
export const runTest = async <A, E>(effect: Effect.Effect<A, E>): Promise<A> => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) return exit.value
  throw new Error(`Effect failed:\n${Cause.pretty(exit.cause)}`)
}

/** Run `effect` expecting it to fail; returns the Exit's failure (or throws if it succeeded). */
export const runFailure = async <A, E>(effect: Effect.Effect<A, E>): Promise<Cause.Cause<E>> => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isFailure(exit)) return exit.cause
  throw new Error(`Expected a failure, got ${JSON.stringify(exit.value)}`)
}
