/** Unwrapping an Either in a test: the value expected, or a thrown error that shows the other. */
import * as Either from "effect/Either"

export const right = <A, E>(either: Either.Either<A, E>): A => {
  if (Either.isLeft(either)) throw new Error(`expected Right, got Left ${String(either.left)}`)
  return either.right
}

export const left = <A, E>(either: Either.Either<A, E>): E => {
  if (Either.isRight(either)) {
    throw new Error(`expected Left, got Right ${JSON.stringify(either.right)}`)
  }
  return either.left
}
