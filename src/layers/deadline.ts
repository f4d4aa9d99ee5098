/**
 * Deadlines that hold everywhere, also in finalizers and other uninterruptible regions, where a
 * plain `Effect.timeout` cannot interrupt what it times: clean-up must never wait forever.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import type { TimeoutException } from "effect/Cause"

/** `effect` for at most `limit`: its result, or Left when it failed or ran out of time. */
export const atMost = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  limit: Duration.DurationInput,
): Effect.Effect<Either.Either<A, E | TimeoutException>, never, R> =>
  Effect.interruptible(effect).pipe(Effect.timeout(Duration.decode(limit)), Effect.either)

/** Whether `effect` succeeded within `limit` (a failure counts as no). */
export const succeedsWithin = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  limit: Duration.DurationInput,
): Effect.Effect<boolean, never, R> =>
  Effect.map(atMost(effect, limit), (result) => result._tag === "Right")
