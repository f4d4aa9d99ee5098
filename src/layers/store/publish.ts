/**
 * Publishing a finished file under its final name, atomically: readers see the old image or the
 * new one, never half of one.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import { ImageExists, StoreIoError } from "../../domain/errors/store.ts"

interface PublishOptions {
  /** Replace whatever `to` is. */
  readonly force: boolean
  /** Make the file read-only (0444), as images in the store are. */
  readonly readOnly: boolean
}

/**
 * Make `from` the published file `to` of the image `name`. Without `force` the link fails if `to`
 * exists, so no one's image is ever replaced by accident, even in a race.
 */
export const publishFile = (
  name: string,
  from: string,
  to: string,
  { force, readOnly }: PublishOptions,
): Effect.Effect<void, StoreIoError | ImageExists, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    if (readOnly) yield* fs.chmod(from, 0o444)
    // The data must be on disk before the name points at it.
    yield* Effect.scoped(Effect.flatMap(fs.open(from, { flag: "r" }), (file) => file.sync))
    if (force) {
      yield* fs.rename(from, to)
      return true
    }
    const linked = yield* fs.link(from, to).pipe(
      Effect.as(true),
      Effect.catchIf(
        (error) => error._tag === "SystemError" && error.reason === "AlreadyExists",
        () => Effect.succeed(false),
      ),
    )
    if (linked) yield* fs.remove(from)
    return linked
  }).pipe(
    Effect.mapError((cause) =>
      new StoreIoError({ operation: "publish", image: name, path: to, cause })
    ),
    Effect.flatMap((published) => published ? Effect.void : new ImageExists({ name, path: to })),
  )
