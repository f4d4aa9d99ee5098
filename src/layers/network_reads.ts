/**
 * Bounded network reads: how long a request may wait for its answer and each read of its body
 * may wait for a byte (`TRANSIENT_NETWORK_TIMEOUT`), and a body read whole only up to a cap,
 * counted as it arrives — a server that announces no length, or lies about it, cannot make us
 * hold more. Bodies read as streams (blobs, images) have their idle bound in bulk_fetch.ts.
 */
import type { ResponseError } from "@effect/platform/HttpClientError"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { NothingArrived } from "../domain/errors/network.ts"
import {
  DEFAULT_NETWORK_TIMEOUT_SECONDS,
  NETWORK_TIMEOUT_VARIABLE,
  parseNetworkTimeout,
} from "../domain/network_timeout.ts"
import { countWithin } from "../domain/registry_protocol.ts"
import { concatBytes } from "../domain/bytes.ts"

/** `TRANSIENT_NETWORK_TIMEOUT`, else DEFAULT_NETWORK_TIMEOUT_SECONDS; invalid values are errors. */
export const networkTimeoutSetting: Config.Config<Duration.Duration> = Config.string(
  NETWORK_TIMEOUT_VARIABLE,
).pipe(
  Config.option,
  Config.mapOrFail((text) => {
    const given = Option.filter(text, (value) => value.trim() !== "")
    if (Option.isNone(given)) return Either.right(Duration.seconds(DEFAULT_NETWORK_TIMEOUT_SECONDS))
    const seconds = parseNetworkTimeout(given.value)
    return seconds === undefined
      ? Either.left(
        ConfigError.InvalidData(
          [NETWORK_TIMEOUT_VARIABLE],
          `${NETWORK_TIMEOUT_VARIABLE} must be a number of seconds above 0 (got '${given.value}')`,
        ),
      )
      : Either.right(Duration.seconds(seconds))
  }),
)

/** The timeout in whole or decimal seconds, as messages give it. */
export const secondsOf = (timeout: Duration.Duration): number => Duration.toMillis(timeout) / 1000

/**
 * `request` (the exchange of a request whose body is `sending`, undefined for none), failed with
 * `stalled` when no answer comes within `timeout` of its body being sent: an upload may take
 * as long as its bytes take, its answer may not.
 */
export const answerWithin = <A, E, R, E2>(
  request: (sent: Effect.Effect<void>) => Effect.Effect<A, E, R>,
  timeout: Duration.Duration,
  stalled: (cause: NothingArrived) => E2,
): Effect.Effect<A, E | E2, R> =>
  Effect.gen(function* () {
    const sent = yield* Deferred.make<void>()
    const silence = Deferred.await(sent).pipe(
      Effect.zipRight(Effect.sleep(timeout)),
      Effect.zipRight(
        Effect.fail(
          stalled(new NothingArrived({ awaited: "answer", seconds: secondsOf(timeout) })),
        ),
      ),
    )
    return yield* Effect.raceFirst(request(Deferred.succeed(sent, undefined)), silence)
  })

export interface BodyLimits<E1, E2> {
  /** The most bytes the body may have. */
  readonly limit: number
  /** How long each read may bring nothing. */
  readonly timeout: Duration.Duration
  /** The error for a body past `limit`. */
  readonly tooLarge: () => E1
  /** The error for a body whose bytes stopped coming. */
  readonly stalled: (cause: NothingArrived) => E2
}

/** A response's `body`, read whole: at most `limit` bytes, none of its reads silent too long. */
export const boundedBody = <E, E1, E2>(
  body: Stream.Stream<Uint8Array, E>,
  limits: BodyLimits<E1, E2>,
): Effect.Effect<Uint8Array, E | E1 | E2> =>
  body.pipe(
    Stream.timeoutFail(
      () =>
        limits.stalled(
          new NothingArrived({ awaited: "byte", seconds: secondsOf(limits.timeout) }),
        ),
      limits.timeout,
    ),
    Stream.mapAccumEffect(0, (total, chunk) => {
      const next = countWithin(total, chunk.length, limits.limit)
      return next === undefined
        ? Effect.fail(limits.tooLarge())
        : Effect.succeed([next, chunk.slice()] as const)
    }),
    Stream.runFold([] as Array<Uint8Array>, (chunks, chunk) => {
      chunks.push(chunk)
      return chunks
    }),
    Effect.map(concatBytes),
  )

/** An empty body is no body: the platform's EmptyBody as zero bytes, other errors as they are. */
export const emptyAsNothing = <A>(
  body: Stream.Stream<A, ResponseError>,
): Stream.Stream<A, ResponseError> =>
  Stream.catchAll(
    body,
    (error) => error.reason === "EmptyBody" ? Stream.empty : Stream.fail(error),
  )

/**
 * The first `limit` bytes of `body` (all of it when shorter), as far as it came before a read
 * silent for `timeout`, or failed: for an error answer, whose message is at its start.
 */
export const bodyStart = <E>(
  body: Stream.Stream<Uint8Array, E>,
  limit: number,
  timeout: Duration.Duration,
): Effect.Effect<Uint8Array> =>
  body.pipe(
    Stream.timeout(timeout),
    Stream.mapAccum(0, (total, chunk) => {
      const kept = chunk.slice(0, Math.max(0, limit - total))
      return [total + kept.length, { kept, full: total + kept.length >= limit }] as const
    }),
    Stream.takeUntil(({ full }) => full),
    Stream.catchAll(() => Stream.empty),
    Stream.runFold([] as Array<Uint8Array>, (chunks, { kept }) => {
      chunks.push(kept)
      return chunks
    }),
    Effect.map(concatBytes),
  )
