/**
 * `transient build`: build the image, share its step layers when asked (`--cache-to`), say what
 * was built, and keep the step cache within its size. Once the image is published, what follows
 * can only warn: the build has succeeded.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import { ImageExists } from "../domain/errors/store.ts"
import { exportCommands } from "../domain/export_format.ts"
import { quoteArgv } from "../domain/guest/commands.ts"
import type { Imagefile } from "../domain/imagefile/mod.ts"
import { planBuild } from "../domain/plan.ts"
import { Reporter } from "../services/reporter.ts"
import { build, type BuildOptions, type BuildResult } from "./build.ts"
import { pushBuildCache } from "./build_cache.ts"
import { type ExportTarget, writeExport } from "./export_image.ts"
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
  /** Files to write from the built image (`--local --format`), each in its format. */
  readonly exports?: ReadonlyArray<ExportTarget>
  /** `--force`: the exports may replace files of their names. */
  readonly replaceExports?: boolean
  /** The built qcow2 is only the exports' source: removed once they are written (or not). */
  readonly discardImage?: boolean
}

/** An export would replace a file, unless `--force`: checked before the build, as the qcow2 is. */
const refuseExisting = (name: string, exports: ReadonlyArray<ExportTarget>) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    for (const target of exports) {
      const taken = yield* fs.exists(target.path).pipe(Effect.orElseSucceed(() => false))
      if (taken) return yield* new ImageExists({ name, path: target.path })
    }
  })

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
  const exports = request.exports ?? []
  const plan = planBuild(request.imagefile)
  if (request.replaceExports !== true) yield* refuseExisting(request.options.target.name, exports)
  const result = yield* build(plan, request.options)
  if (request.dryRun) {
    // A dry run has no image to measure: a scratch disk's size is the Imagefile's.
    const virtualSize = plan.base._tag === "Scratch"
      ? plan.base.layout.sizeBytes
      : result.image.virtualSize
    for (const target of exports) {
      const commands = exportCommands({
        from: result.image.path,
        to: target.path,
        format: target.format,
        virtualSize,
        ...(target.vmdkSubformat === undefined ? {} : { vmdkSubformat: target.vmdkSubformat }),
      })
      for (const argv of commands) yield* reporter.detail(`(host) ${quoteArgv(argv)}`)
    }
    yield* reporter.info(`Dry run: nothing was built; the image would be ${result.image.path}`)
    return result
  }
  const finish = Effect.gen(function* () {
    if (request.cacheTo !== undefined) yield* shareLayers(request.cacheTo, result)
    // Recorded now, so that `image ls` and `run` need not read the disk; a failure leaves it to
    // them.
    if (request.options.target._tag === "Store") yield* Effect.ignore(storedFirmware(result.image))
    for (const target of exports) {
      yield* writeExport(result.image.path, target)
      yield* reporter.info(`Wrote ${target.path} (${target.format})`)
    }
    yield* reporter.result({
      name: result.image.name,
      // A discarded image is not where the build's output is: its first export is.
      path: request.discardImage === true
        ? exports[0]?.path ?? result.image.path
        : result.image.path,
      virtualSize: result.image.virtualSize,
      actualSize: result.image.actualSize,
      durationMs: result.durationMs,
      steps: result.steps,
    })
  })
  // The image was only the exports' source: gone however they end.
  yield* request.discardImage === true
    ? Effect.ensuring(
      finish,
      Effect.flatMap(FileSystem.FileSystem, (fs) => Effect.ignore(fs.remove(result.image.path))),
    )
    : finish
  yield* keepCacheWithin(request.keepBytes)
  return result
})
