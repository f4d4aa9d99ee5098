/**
 * A Stream through a transform written for web streams (xz-decompress's XzReadableStream).
 * The transform's own failures become `onError`; a failure of the input passes through as it is.
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"

export const throughWebTransform = <E, R, E2>(
  self: Stream.Stream<Uint8Array, E, R>,
  transform: (input: ReadableStream<Uint8Array>) => ReadableStream<Uint8Array>,
  onError: (cause: unknown) => E2,
): Stream.Stream<Uint8Array, E | E2, R> =>
  Stream.unwrap(Effect.gen(function* () {
    // The web side sees the input's failure only as an exception; this keeps it typed.
    const inputFailure = yield* Ref.make(Option.none<Cause.Cause<E>>())
    const input = yield* Stream.toReadableStreamEffect(
      self.pipe(Stream.tapErrorCause((cause) => Ref.set(inputFailure, Option.some(cause)))),
    )
    return Stream.fromReadableStream(() => transform(input), identity).pipe(
      Stream.catchAll((error): Stream.Stream<never, E | E2> =>
        Stream.unwrap(Effect.map(
          Ref.get(inputFailure),
          Option.match({
            onNone: (): Stream.Stream<never, E | E2> => Stream.fail(onError(error)),
            onSome: (cause): Stream.Stream<never, E | E2> => Stream.failCause(cause),
          }),
        ))
      ),
    )
  }))
