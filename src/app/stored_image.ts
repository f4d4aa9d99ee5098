/**
 * A stored image named on the command line (`image push`, `image inspect`): a plain name the
 * store holds, never a spec that would fetch one.
 */
import * as Effect from "effect/Effect"
import { ImageNotInStore, InvalidImageName } from "../domain/errors/store.ts"
import { parseImageSpec } from "../domain/image_spec.ts"
import { ImageStore } from "../services/image_store.ts"

/** The stored image `name`; `command` (`push`) words the error for anything else. */
export const storedImageNamed = Effect.fn("storedImageNamed")(function* (
  name: string,
  command: string,
) {
  const store = yield* ImageStore
  const spec = yield* parseImageSpec(name)
  if (spec.source._tag !== "Named") {
    return yield* new InvalidImageName({ name, reason: `${command} takes a stored image's name` })
  }
  const { present } = yield* store.lookup(name).pipe(
    Effect.catchTag("ImageNotFound", () => Effect.succeed({ present: false })),
  )
  if (!present) return yield* new ImageNotInStore({ image: name, store: store.root })
  return yield* store.resolve(name)
})
