/**
 * The builder: runs a BuildPlan against the services. It knows only their interfaces, so the
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
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import type { DiskImageError, ImageExists, InvalidImageSpec } from "./domain/errors.ts"
import { ContextSourceError, StepFailed } from "./domain/errors.ts"
import type { VmError } from "./domain/guest/errors.ts"
import { GuestOperation } from "./domain/guest/operation.ts"
import { OutputTail } from "./domain/output_tail.ts"
import type { Action, BuildPlan, PlanStep } from "./domain/plan.ts"
import { cachePlan } from "./domain/step_keys.ts"
import type { StoreError } from "./domain/store_errors.ts"
import type { NotADiskImage, RegistryError } from "./domain/errors/registry.ts"
import { BuildContext, type ContextEntry } from "./services/build_context.ts"
import { type BootOptions, BuildVm, type VmSession } from "./services/build_vm.ts"
import { DiskImages } from "./services/disk_images.ts"
import { ImageStore, type PublishTarget, type StoredImage } from "./services/image_store.ts"
import { type CachedLayer, type FinishedLayer, LayerCache } from "./services/layer_cache.ts"
import { type OutputStream, Reporter, type StepSummary } from "./services/reporter.ts"

export interface BuildOptions {
  readonly target: PublishTarget
  readonly force: boolean
  /** Serve steps from the step cache (false: `--no-cache`; what runs is kept either way). */
  readonly useCache: boolean
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

/** How many lines of a failed RUN's output its error shows. */
const TAIL_LINES = 20

export type BuildError =
  | StepFailed
  | VmError
  | ContextSourceError
  | StoreError
  | RegistryError
  | NotADiskImage
  | ImageExists
  | DiskImageError
  | InvalidImageSpec

export const build = Effect.fn("build")(function* (plan: BuildPlan, options: BuildOptions) {
  const store = yield* ImageStore
  const disks = yield* DiskImages
  const vm = yield* BuildVm
  const context = yield* BuildContext
  const cache = yield* LayerCache
  const reporter = yield* Reporter
  const started = yield* Clock.currentTimeMillis
  const total = plan.steps.length

  // Fail on a missing or escaping source before anything is created or booted.
  const entries = new Map<string, ContextEntry>()
  const sourceDigests = new Map<string, string>()
  for (const source of plan.sources) {
    const location = plan.sourceLocations.get(source)
    const located = <A>(effect: Effect.Effect<A, ContextSourceError>) =>
      effect.pipe(
        Effect.mapError((error) =>
          location === undefined ? error : new ContextSourceError({ ...error, location })
        ),
      )
    const resolved = yield* located(context.resolve(source))
    entries.set(source, resolved)
    sourceDigests.set(source, yield* located(context.digest(resolved)))
  }
  const entry = (source: string) => entries.get(source)!

  // A name that is taken fails before the base is fetched.
  const working = yield* store.begin(options.target, { force: options.force })
  const base = plan.base._tag === "Image" ? yield* store.resolve(plan.base.spec) : undefined
  const layout = cachePlan(plan, {
    artifacts: vm.identity,
    ...(base === undefined ? {} : { base: yield* store.identity(base) }),
    sources: sourceDigests,
  })
  const hits = options.useCache
    ? yield* cache.hits(layout.layers.map((layer) => layer.key), base?.path)
    : []
  const toRun = layout.layers.slice(hits.length)

  const workspace = yield* cache.workspace
  let files = 0
  const nextFile = () => `${workspace}/disk-${files++}.qcow2`
  // The VM lives in a scope of its own so it can be shut down before the image is published;
  // on failure the outer scope closes it first, then removes the working image.
  const vmScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
  let session: VmSession | undefined
  let chrootReady = false
  /** The file the VM writes. */
  let active = nextFile()

  const bootOn = Effect.fn("build.boot")(function* () {
    session = yield* vm.boot({ ...options.vm, disk: active }).pipe(Scope.extend(vmScope))
    return session
  })
  const chroot = Effect.fn("build.chroot")(function* (current: VmSession) {
    if (chrootReady) return
    yield* current.perform(GuestOperation.PrepareChroot())
    chrootReady = true
  })
  // The plan puts CreateDisk or UseBase first, so a session exists for every later step.
  const requireSession = (): Effect.Effect<VmSession> =>
    session === undefined
      ? Effect.dieMessage("the helper VM was not started before the step that needs it")
      : Effect.succeed(session)

  const failStep = (step: PlanStep, reason: string, extra: Partial<StepFailed> = {}) =>
    new StepFailed({ step: step.index, total, instruction: step.text, reason, ...extra })

  // Where each of the plan's actions becomes host work and guest operations.
  const perform = Effect.fn("build.perform")(function* (step: PlanStep, action: Action) {
    switch (action._tag) {
      case "CreateDisk": {
        yield* disks.create({ path: active, sizeBytes: action.layout.sizeBytes })
        const current = yield* bootOn()
        return yield* current.perform(GuestOperation.PartitionDisk({ layout: action.layout }))
      }
      case "UseBase": {
        // The base itself is never written: the first layer is an overlay of it.
        yield* disks.overlay({ path: active, backing: base!.path })
        const current = yield* bootOn()
        return yield* current.perform(GuestOperation.DiscoverRoot())
      }
      case "Format":
        return yield* (yield* requireSession()).perform(GuestOperation.Format(action.format))
      case "Mount":
        return yield* (yield* requireSession()).perform(
          GuestOperation.MountPartitions({ mounts: action.mounts }),
        )
      case "Copy":
        return yield* (yield* requireSession()).perform(GuestOperation.CopyIn({
          sources: action.sources.map(entry),
          destination: action.destination,
        }))
      case "Add": {
        const current = yield* requireSession()
        for (const source of action.sources) {
          yield* current.perform(
            GuestOperation.Extract({ source: entry(source), destination: action.destination }),
          )
        }
        return
      }
      case "Run": {
        const current = yield* requireSession()
        yield* chroot(current)
        const tail = new OutputTail(TAIL_LINES)
        const status = yield* current.run({
          command: action.command,
          onOutput: (stream: OutputStream, chunk: Uint8Array) => {
            tail.push(chunk)
            return reporter.output(stream, chunk)
          },
        })
        if (status !== 0) {
          return yield* failStep(step, `the command exited with status ${status}`, {
            exitCode: status,
            lastOutput: tail.lines(),
          })
        }
        return
      }
      case "Inspect": {
        if (!options.interactive) {
          return yield* failStep(
            step,
            "INSPECT needs an interactive terminal, and this build has none (remove INSPECT for unattended builds)",
          )
        }
        const current = yield* requireSession()
        yield* chroot(current)
        yield* current.shell
        return
      }
    }
  })

  /**
   * Boot on a new file over the last cached layer and bring the build root back: the scratch
   * disk's partitions mounted as the prelude mounted them, or the base image's root found.
   */
  const resume = Effect.fn("build.resume")(function* (below: CachedLayer) {
    yield* disks.overlay({ path: active, backing: below.path })
    const current = yield* bootOn()
    if (plan.base._tag === "Image") return yield* current.perform(GuestOperation.DiscoverRoot())
    const mounts = plan.steps.flatMap((step) =>
      step.actions.flatMap((action) =>
        action._tag === "Mount" ? [action.mounts] : []
      )
    )[0]
    if (mounts !== undefined) yield* current.perform(GuestOperation.MountPartitions({ mounts }))
  })

  const summaries: Array<StepSummary> = []
  const runStep = Effect.fn("build.step")(function* (step: PlanStep) {
    yield* reporter.stepStart(step.index, total, step.text)
    const stepStarted = yield* Clock.currentTimeMillis
    for (const action of step.actions) yield* perform(step, action)
    const durationMs = (yield* Clock.currentTimeMillis) - stepStarted
    summaries.push({ index: step.index, text: step.text, durationMs })
    yield* reporter.stepEnd(step.index, total, durationMs, { cached: false })
  })

  for (const [i, layer] of layout.layers.slice(0, hits.length).entries()) {
    const source = hits[i]?.source
    for (const step of layer.steps) {
      yield* reporter.stepStart(step.index, total, step.text)
      summaries.push({ index: step.index, text: step.text, durationMs: 0 })
      yield* reporter.stepEnd(step.index, total, 0, {
        cached: true,
        ...(source === undefined ? {} : { cacheSource: source }),
      })
    }
  }

  /** Layers this build finished, oldest first: kept once the VM has stopped. */
  const finished: Array<FinishedLayer> = []
  const runRest = Effect.gen(function* () {
    const below = hits[hits.length - 1]
    if (below !== undefined) yield* resume(below)
    for (const [i, layer] of toRun.entries()) {
      for (const step of layer.steps) yield* runStep(step)
      const last = i === toRun.length - 1 && layout.uncached.length === 0
      if (!last) {
        const next = nextFile()
        const snapshotStarted = yield* Clock.currentTimeMillis
        yield* (yield* requireSession()).snapshot(next)
        const snapshotMs = (yield* Clock.currentTimeMillis) - snapshotStarted
        yield* reporter.detail(`layer ${layer.key.slice(0, 12)} (snapshot ${snapshotMs} ms)`)
        finished.push({ key: layer.key, text: layer.text, path: active })
        active = next
      }
    }
    for (const step of layout.uncached) yield* runStep(step)
    if (session) yield* session.perform(GuestOperation.Sync())
  })

  /** Keep the finished layers; the cache failing to take them is a warning, not a failure. */
  const keepFinished = Effect.fn("build.keep")(function* () {
    if (finished.length === 0) return []
    return yield* cache.keep(hits[hits.length - 1], finished, {
      replace: !options.useCache,
      ...(base === undefined ? {} : { base: base.path }),
    }).pipe(
      Effect.catchAll((error) =>
        Effect.as(reporter.warn(`The step cache was not updated: ${error.message}`), [])
      ),
    )
  })

  /** Flatten the chain ending at `top` into the working image, and publish it. */
  const publish = Effect.fn("build.publish")(function* (top: string) {
    const flattenStarted = yield* Clock.currentTimeMillis
    yield* disks.convert({ from: top, to: working.path, fromFormat: "qcow2" })
    const flattenMs = (yield* Clock.currentTimeMillis) - flattenStarted
    yield* reporter.detail(`image flattened from its layers in ${flattenMs} ms`)
    // Once published, the build has succeeded, whatever comes after: the caller is told at once.
    return yield* Effect.uninterruptible(
      Effect.tap(working.commit, (image) => options.onPublished?.(image) ?? Effect.void),
    )
  })

  let image: StoredImage
  /** The cached layer the image is, when it is one. */
  let imageLayer: CachedLayer | undefined
  /** The cached layers under the image: all of them, or those below what was not kept. */
  let chain: ReadonlyArray<CachedLayer> = []
  const cachedTop = hits[hits.length - 1]
  if (cachedTop !== undefined && toRun.length === 0 && layout.uncached.length === 0) {
    // Everything was cached: no VM at all.
    image = yield* publish(cachedTop.path)
    imageLayer = cachedTop
    chain = hits
  } else {
    const ran = yield* Effect.exit(runRest)
    // Whole or not at all: an interrupted close would skip the finalizers after the one it hit
    // (QEMU left running). Each of them has its own deadline.
    yield* Effect.uninterruptible(Scope.close(vmScope, Exit.isSuccess(ran) ? Exit.void : ran))
    if (Exit.isFailure(ran)) {
      // What ran before the failed step is kept: the next build starts at that step.
      yield* keepFinished()
      return yield* Effect.failCause(ran.cause)
    }
    const lastLayer = layout.uncached.length === 0 ? toRun[toRun.length - 1] : undefined
    if (lastLayer !== undefined) {
      finished.push({ key: lastLayer.key, text: lastLayer.text, path: active })
    }
    // Flattened before the layers are kept: keeping moves the files the chain names.
    image = yield* publish(active)
    const kept = yield* keepFinished()
    chain = kept.length === finished.length ? [...hits, ...kept] : hits
    if (lastLayer !== undefined && kept.length === finished.length) imageLayer = kept.at(-1)
  }
  if (options.target._tag === "Store") {
    const builtAt = new Date(yield* Clock.currentTimeMillis).toISOString()
    yield* store.remember(
      image,
      imageLayer === undefined ? `build:${crypto.randomUUID()}` : `layer:${imageLayer.id}`,
      options.imagefileDigest === undefined
        ? undefined
        : { imagefileDigest: options.imagefileDigest, builtAt },
    )
  }
  const durationMs = (yield* Clock.currentTimeMillis) - started
  return { image, steps: summaries, durationMs, layers: chain } satisfies BuildResult
}, Effect.scoped)
