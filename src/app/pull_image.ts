/**
 * `transient image pull`: fetch an image into the store unless it is there, and say which.
 */
import * as Effect from "effect/Effect"
import { ImageStore } from "../services/image_store.ts"
import { Reporter } from "../services/reporter.ts"

export const pullImage = Effect.fn("pullImage")(function* (spec: string) {
  const store = yield* ImageStore
  const reporter = yield* Reporter
  const before = yield* store.lookup(spec)
  const image = yield* store.resolve(spec)
  yield* reporter.pulled({ present: before.present, ...image })
  return image
})
