/**
 * The build: runs a BuildPlan against the services. It knows only their interfaces, so the
 * same program builds real images over QEMU and simulated ones in tests.
 *
 * With the step cache (src/domain/step_keys.ts, src/services/layer_cache.ts): the plan's layers
 * the cache holds are not run; the helper VM boots on a new file over the last of them, and
 * after each further layer the disk is snapshotted, so that every finished layer can be kept —
 * also when a later step fails. The published image is the chain flattened into one file.
 *
 * Every resource is scoped: the working image is removed and the helper VM stopped by
 * finalizers when a build fails or is interrupted, so nothing half-written is ever published.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type {
  ContainerSourceFailed,
  ContextSourceError,
  StepFailed,
} from "../domain/errors/build.ts"
import type {
  DiskImageError,
  ImageExists,
  InvalidImageSpec,
  StoreError,
} from "../domain/errors/store.ts"
import type { NotADiskImage, RegistryError } from "../domain/errors/registry.ts"
import type { VmError } from "../domain/errors/vm.ts"
import type { BuildPlan } from "../domain/plan.ts"
import type { Platform } from "../domain/platform.ts"
import type { BootOptions } from "../services/build_vm.ts"
import { ImageStore, type PublishTarget, type StoredImage } from "../services/image_store.ts"
import type { CachedLayer } from "../services/layer_cache.ts"
import type { StepSummary } from "../services/reporter.ts"
import { findCachedLayers } from "./build/cached_layers.ts"
import { keepLayers, publish, remember } from "./build/finish.ts"
import { makeActionRunner } from "./build/perform_action.ts"
import { runLayers } from "./build/run_layers.ts"
import { resolveSources } from "./build/sources.ts"
import { makeStepLog } from "./build/step_log.ts"
import { makeVmChain } from "./build/vm_chain.ts"

export interface BuildOptions {
  readonly target: PublishTarget
  readonly force: boolean
  /** Serve steps from the step cache (false: `--no-cache`; what runs is kept either way). */
  readonly useCache: boolean
  /** The entry ADD takes from a multi-platform container image (default: linux/amd64). */
  readonly platform?: Platform
  /** How to boot the helper VM; the disk is the build's working image. */
  readonly vm: Omit<BootOptions, "disk">
  /** Whether a user sits at a terminal (INSPECT needs one). */
  readonly interactive: boolean
  /** Runs as soon as the image is published (not interruptible: the image is there). */
  readonly onPublished?: (image: StoredImage) => Effect.Effect<void>
  /** `sha256:HEX` of the Imagefile's text, recorded with the image (`image push` shows it). */
  readonly imagefileDigest?: string
}

export interface BuildResult {
  readonly image: StoredImage
  readonly steps: ReadonlyArray<StepSummary>
  readonly durationMs: number
  /** The cached layers the image is made of, first to last (what `--cache-to` pushes). */
  readonly layers: ReadonlyArray<CachedLayer>
}

export type BuildError =
  | StepFailed
  | ContainerSourceFailed
  | VmError
  | ContextSourceError
  | StoreError
  | RegistryError
  | NotADiskImage
  | ImageExists
  | DiskImageError
  | InvalidImageSpec

export const build = Effect.fn("build")(function* (plan: BuildPlan, options: BuildOptions) {
  const started = yield* Clock.currentTimeMillis
  const store = yield* ImageStore
  // Fail on a missing or escaping source before anything is created or booted.
  const sources = yield* resolveSources(plan, options.platform)
  // A name that is taken fails before the base is fetched.
  const working = yield* store.begin(options.target, { force: options.force })
  const base = plan.base._tag === "Image" ? yield* store.resolve(plan.base.spec) : undefined
  const cached = yield* findCachedLayers(plan, {
    base,
    sourceDigests: sources.digests,
    useCache: options.useCache,
  })
  const chain = yield* makeVmChain(options.vm)
  const steps = yield* makeStepLog(plan.steps.length)
  yield* steps.cached(cached.layout.layers, cached.hits)
  const keep = () =>
    keepLayers(cached.top, chain.finished, {
      replace: !options.useCache,
      base: cached.base,
    })
  /** The result, once the image is remembered as what it is: a cached layer or not. */
  const finish = Effect.fn("build.finish")(function* (
    image: StoredImage,
    imageLayer: CachedLayer | undefined,
    layers: ReadonlyArray<CachedLayer>,
  ) {
    yield* remember(image, imageLayer, { ...options, containerImages: sources.origins })
    const durationMs = (yield* Clock.currentTimeMillis) - started
    return { image, steps: steps.summaries, durationMs, layers } satisfies BuildResult
  })

  if (cached.complete) {
    // Everything was cached: no VM at all.
    const image = yield* publish(working, cached.top!.path, options.onPublished)
    return yield* finish(image, cached.top, cached.hits)
  }
  const actions = yield* makeActionRunner({
    plan,
    chain,
    sources,
    base: base?.path,
    interactive: options.interactive,
  })
  const ran = yield* Effect.exit(runLayers(cached, chain, {
    resume: actions.resume,
    runStep: (step) => steps.ran(step, actions.performStep(step)),
  }))
  yield* chain.stop(ran)
  // What ran before a failed step is kept: the next build starts at that step.
  if (Exit.isFailure(ran)) return yield* Effect.zipRight(keep(), Effect.failCause(ran.cause))
  const lastLayer = cached.layout.uncached.length === 0 ? cached.toRun.at(-1) : undefined
  if (lastLayer !== undefined) chain.finishWith(lastLayer)
  // Flattened before the layers are kept: keeping moves the files the chain names.
  const image = yield* publish(working, chain.active(), options.onPublished)
  const kept = yield* keep()
  // The image is a cached layer only when every layer under it was kept.
  const keptAll = kept.length === chain.finished.length
  return yield* finish(
    image,
    lastLayer !== undefined && keptAll ? kept.at(-1) : undefined,
    keptAll ? [...cached.hits, ...kept] : cached.hits,
  )
}, Effect.scoped)
