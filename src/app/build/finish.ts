/**
 * The end of a build: the layer chain flattened into the working image and published, the
 * layers this build finished kept in the step cache, and where the image came from remembered.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type { ContainerOrigin } from "../../domain/store_record.ts"
import { DiskImages } from "../../services/disk_images.ts"
import {
  ImageStore,
  type PublishTarget,
  type StoredImage,
  type WorkingImage,
} from "../../services/image_store.ts"
import {
  type BaseImage,
  type CachedLayer,
  type FinishedLayer,
  LayerCache,
} from "../../services/layer_cache.ts"
import { Reporter } from "../../services/reporter.ts"

/** Flatten the chain ending at `top` into the working image, and publish it. */
export const publish = Effect.fn("build.publish")(function* (
  working: WorkingImage,
  top: string,
  onPublished: ((image: StoredImage) => Effect.Effect<void>) | undefined,
) {
  const flattenStarted = yield* Clock.currentTimeMillis
  yield* (yield* DiskImages).convert({ from: top, to: working.path, fromFormat: "qcow2" })
  const flattenMs = (yield* Clock.currentTimeMillis) - flattenStarted
  yield* (yield* Reporter).detail(`image flattened from its layers in ${flattenMs} ms`)
  // Once published, the build has succeeded, whatever comes after: the caller is told at once.
  return yield* Effect.uninterruptible(
    Effect.tap(working.commit, (image) => onPublished?.(image) ?? Effect.void),
  )
})

/**
 * Keep the layers this build finished, on top of `below`; returns those kept. The cache
 * failing to take them is a warning, not a failure.
 */
export const keepLayers = Effect.fn("build.keep")(function* (
  below: CachedLayer | undefined,
  finished: ReadonlyArray<FinishedLayer>,
  options: { readonly replace: boolean; readonly base: BaseImage | undefined },
) {
  if (finished.length === 0) return []
  const reporter = yield* Reporter
  return yield* (yield* LayerCache).keep(below, finished, {
    replace: options.replace,
    ...(options.base === undefined ? {} : { base: options.base }),
  }).pipe(
    Effect.catchAll((error) =>
      Effect.as(reporter.warn(`The step cache was not updated: ${error.message}`), [])
    ),
  )
})

/**
 * Record an image published to the store: its identity (the cached layer it is, or one of its
 * own) and, when known, the Imagefile's digest with the time it was built.
 */
export const remember = Effect.fn("build.remember")(function* (
  image: StoredImage,
  imageLayer: CachedLayer | undefined,
  options: {
    readonly target: PublishTarget
    readonly imagefileDigest?: string
    readonly containerImages?: ReadonlyArray<ContainerOrigin>
  },
) {
  if (options.target._tag !== "Store") return
  const builtAt = new Date(yield* Clock.currentTimeMillis).toISOString()
  yield* (yield* ImageStore).remember(
    image,
    imageLayer === undefined ? `build:${crypto.randomUUID()}` : `layer:${imageLayer.id}`,
    options.imagefileDigest === undefined ? undefined : {
      imagefileDigest: options.imagefileDigest,
      builtAt,
      ...(options.containerImages === undefined || options.containerImages.length === 0
        ? {}
        : { containerImages: options.containerImages }),
    },
  )
})
