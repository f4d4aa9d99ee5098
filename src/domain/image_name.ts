/**
 * The names the image store holds: which it takes, and the order it lists them in. Both stores
 * (the directory and the memory one) apply these, so they refuse the same names alike.
 */
import * as Either from "effect/Either"
import { imageNameProblem } from "./image_spec.ts"
import { InvalidImageName } from "./errors/store.ts"

/** `name`, when the store can hold an image by that name. */
export const checkImageName = (name: string): Either.Either<string, InvalidImageName> => {
  const reason = imageNameProblem(name)
  return reason === undefined
    ? Either.right(name)
    : Either.left(new InvalidImageName({ name, reason }))
}

/** The store's listing order: by name, code unit by code unit (not by locale). */
export const compareImageNames = (a: string, b: string): number => a < b ? -1 : a > b ? 1 : 0
