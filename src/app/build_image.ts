/**
 * `transient build`: build the image, share its step layers when asked (`--cache-to`), say what
 * was built, and keep the step cache within its size. Once the image is published, what follows
 * can only warn: the build has succeeded.
 */
import * as Effect from "effect/Effect"
import type { Imagefile } from "../domain/imagefile/mod.ts"
import { planBuild } from "../domain/plan.ts"
import { Reporter } from "../services/reporter.ts"
import { build, type BuildOptions, type BuildResult } from "./build.ts"
import { pushBuildCache } from "./build_cache.ts"
import { storedFirmware } from "./image_firmware.ts"
import { pruneCache } from "./prune_cache.ts"

export interface BuildImageRequest {
  readonly imagefile: Imagefile
  readonly options: BuildOptions
  /** Describe the build, start nothing, write nothing. */
  readonly dryRun: boolean
  /** The registry reference to push the step layers to. */
  readonly cacheTo?: string
  /** The step cache's size limit, enforced after the build. */
  readonly keepBytes: number
}

/** Push the image's step layers as a build cache; a failure is a warning. */
const shareLayers = (reference: string, result: BuildResult) =>
  pushBuildCache(reference, result.layers).pipe(
    Effect.catchAll((error) =>
      Effect.flatMap(
        Reporter,
        (reporter) =>
          reporter.warn(`The build cache was not pushed to ${reference}: ${error.message}`),
      )
    ),
  )

/** The least recently used layers beyond the limit go; a failure is a warning. */
const keepCacheWithin = (keepBytes: number) =>
  pruneCache({ all: false, keepBytes }).pipe(
    Effect.asVoid,
    Effect.catchAll((error) =>
      Effect.flatMap(
        Reporter,
        (reporter) => reporter.warn(`The step cache was not pruned: ${error.message}`),
      )
    ),
  )

export const buildImage = Effect.fn("buildImage")(function* (request: BuildImageRequest) {
  const reporter = yield* Reporter
  const result = yield* build(planBuild(request.imagefile), request.options)
  if (request.dryRun) {
    yield* reporter.info(`Dry run: nothing was built; the image would be ${result.image.path}`)
    return result
  }
  if (request.cacheTo !== undefined) yield* shareLayers(request.cacheTo, result)
  // Recorded now, so that `image ls` and `run` need not read the disk; a failure leaves it to them.
  if (request.options.target._tag === "Store") yield* Effect.ignore(storedFirmware(result.image))
  yield* reporter.result({
    name: result.image.name,
    path: result.image.path,
    virtualSize: result.image.virtualSize,
    actualSize: result.image.actualSize,
    durationMs: result.durationMs,
    steps: result.steps,
  })
  yield* keepCacheWithin(request.keepBytes)
  return result
})
