/**
 * The builder: runs a BuildPlan against the services. It knows only their interfaces, so the
 * same program builds real images over QEMU and simulated ones in tests.
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
import type { StoreError } from "./domain/store_errors.ts"
import { BuildContext, type ContextEntry } from "./services/build_context.ts"
import { type BootOptions, BuildVm, type VmSession } from "./services/build_vm.ts"
import { DiskImages } from "./services/disk_images.ts"
import { ImageStore, type PublishTarget, type StoredImage } from "./services/image_store.ts"
import { type OutputStream, Reporter, type StepSummary } from "./services/reporter.ts"

export interface BuildOptions {
  readonly target: PublishTarget
  readonly force: boolean
  /** How to boot the helper VM; the disk is the build's working image. */
  readonly vm: Omit<BootOptions, "disk">
  /** Whether a user sits at a terminal (INSPECT needs one). */
  readonly interactive: boolean
  /** Runs as soon as the image is published (not interruptible: the image is there). */
  readonly onPublished?: (image: StoredImage) => Effect.Effect<void>
}

export interface BuildResult {
  readonly image: StoredImage
  readonly steps: ReadonlyArray<StepSummary>
  readonly durationMs: number
}

/** How many lines of a failed RUN's output its error shows. */
const TAIL_LINES = 20

export type BuildError =
  | StepFailed
  | VmError
  | ContextSourceError
  | StoreError
  | ImageExists
  | DiskImageError
  | InvalidImageSpec

export const build = Effect.fn("build")(function* (plan: BuildPlan, options: BuildOptions) {
  const store = yield* ImageStore
  const disks = yield* DiskImages
  const vm = yield* BuildVm
  const context = yield* BuildContext
  const reporter = yield* Reporter
  const started = yield* Clock.currentTimeMillis
  const total = plan.steps.length

  // Fail on a missing or escaping source before anything is created or booted.
  const entries = new Map<string, ContextEntry>()
  for (const source of plan.sources) {
    const location = plan.sourceLocations.get(source)
    const resolved = yield* context.resolve(source).pipe(
      Effect.mapError((error) =>
        location === undefined ? error : new ContextSourceError({ ...error, location })
      ),
    )
    entries.set(source, resolved)
  }
  const entry = (source: string) => entries.get(source)!

  const working = yield* store.begin(options.target, { force: options.force })
  // The VM lives in a scope of its own so it can be shut down before the image is published;
  // on failure the outer scope closes it first, then removes the working image.
  const vmScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
  let session: VmSession | undefined
  let chrootReady = false

  const bootOn = Effect.fn("build.boot")(function* () {
    session = yield* vm.boot({ ...options.vm, disk: working.path }).pipe(
      Scope.extend(vmScope),
    )
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
        yield* disks.create({ path: working.path, sizeBytes: action.layout.sizeBytes })
        const current = yield* bootOn()
        return yield* current.perform(GuestOperation.PartitionDisk({ layout: action.layout }))
      }
      case "UseBase": {
        const base = yield* store.resolve(action.spec)
        yield* disks.convert({ from: base.path, to: working.path, fromFormat: base.format })
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

  const summaries: Array<StepSummary> = []
  for (const step of plan.steps) {
    yield* reporter.stepStart(step.index, total, step.text)
    const stepStarted = yield* Clock.currentTimeMillis
    for (const action of step.actions) yield* perform(step, action)
    const durationMs = (yield* Clock.currentTimeMillis) - stepStarted
    summaries.push({ index: step.index, text: step.text, durationMs })
    yield* reporter.stepEnd(step.index, total, durationMs)
  }

  if (session) yield* session.perform(GuestOperation.Sync())
  // Whole or not at all: an interrupted close would skip the finalizers after the one it hit
  // (QEMU left running). Each of them has its own deadline.
  yield* Effect.uninterruptible(Scope.close(vmScope, Exit.void))
  // Once published, the build has succeeded, whatever comes after: the caller is told at once.
  const image = yield* Effect.uninterruptible(
    Effect.tap(working.commit, (image) => options.onPublished?.(image) ?? Effect.void),
  )
  const durationMs = (yield* Clock.currentTimeMillis) - started
  return { image, steps: summaries, durationMs } satisfies BuildResult
}, Effect.scoped)
