/**
 * Where a plan's action becomes work: the host's part (a new disk, or an overlay, and the VM
 * booted on it) and then its guest operations (src/domain/guest/action_operations.ts), which
 * the VM chain performs. A RUN that exits non-zero, and an INSPECT with no terminal, fail the
 * step.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { StepFailed } from "../../domain/errors/build.ts"
import { GuestCommandFailed, isVmError } from "../../domain/errors/vm.ts"
import {
  type ActionOperation,
  actionOperations,
  type AddContainerImage,
  resumeOperations,
} from "../../domain/guest/action_operations.ts"
import { GuestOperation } from "../../domain/guest/operation.ts"
import { ContainerImages } from "../../services/container_images.ts"
import { OutputTail } from "../../domain/output_tail.ts"
import type { Action, BuildPlan, PlanStep } from "../../domain/plan.ts"
import type { CachedLayer } from "../../services/layer_cache.ts"
import { type OutputStream, Reporter } from "../../services/reporter.ts"
import type { ResolvedSources } from "./sources.ts"
import type { VmChain } from "./vm_chain.ts"

/** The apply-layer command said why it refused a layer (it exits 1 with one line). */
const refusedByGuest = (error: unknown): error is GuestCommandFailed =>
  error instanceof GuestCommandFailed && error.exitCode === 1 && (error.log?.length ?? 0) > 0

/** How many lines of a failed RUN's output its error shows. */
const TAIL_LINES = 20

export interface ActionContext {
  readonly plan: BuildPlan
  readonly chain: VmChain
  readonly sources: ResolvedSources
  /** The file of `FROM <image>`'s image. */
  readonly base: string | undefined
  /** Whether a user sits at a terminal (INSPECT needs one). */
  readonly interactive: boolean
}

export const makeActionRunner = (context: ActionContext) =>
  Effect.gen(function* () {
    const reporter = yield* Reporter
    const images = yield* ContainerImages
    const { chain, plan } = context
    const failStep = (step: PlanStep, reason: string, extra: Partial<StepFailed> = {}) =>
      new StepFailed({
        step: step.index,
        total: plan.steps.length,
        instruction: step.text,
        reason,
        ...extra,
      })

    const run = Effect.fn("build.run")(function* (step: PlanStep, command: string) {
      const tail = new OutputTail(TAIL_LINES)
      const status = yield* (yield* chain.session).run({
        command,
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
    })

    /** ADD of a container image: its layers in order, each streamed from its source. */
    const addImage = Effect.fn("build.addContainerImage")(function* (
      step: PlanStep,
      operation: AddContainerImage,
    ) {
      const image = context.sources.image(operation.source)
      const session = yield* chain.session
      for (const [index, layer] of image.layers.entries()) {
        // Shown once the layer is read (a dry run reads none).
        const tar = Stream.unwrap(
          Effect.map(
            reporter.progress(
              `Layer ${index + 1}/${image.layers.length} of ${operation.source} (${
                layer.digest.slice(0, 19)
              })`,
              undefined,
              { phase: "unpack" },
            ),
            (progress) =>
              images.openLayer(image, layer).pipe(
                Stream.tap((chunk) => progress.advance(chunk.length)),
                Stream.ensuring(progress.done),
              ),
          ),
        )
        yield* session.applyLayer(
          GuestOperation.ApplyLayer({
            source: operation.source,
            layer: layer.digest,
            destination: operation.destination,
          }),
          tar,
        ).pipe(
          // A layer that cannot be read (corrupt, gone from the registry) or that the guest
          // refuses (an entry that would leave the root) fails the step that names it; the
          // helper VM's own failures stay its errors.
          Effect.catchIf(
            (error) => !isVmError(error) || refusedByGuest(error),
            (error) =>
              failStep(
                step,
                refusedByGuest(error)
                  ? `layer ${layer.digest.slice(0, 19)}: ${error.log?.at(-1) ?? error.reason}`
                  : error.message,
              ),
          ),
        )
      }
    })

    const operate = (step: PlanStep, operation: ActionOperation) => {
      switch (operation._tag) {
        case "Run":
          return run(step, operation.command)
        case "AddContainerImage":
          return addImage(step, operation)
        case "OpenShell":
          return Effect.asVoid(Effect.flatMap(chain.session, (session) => session.shell))
        default:
          return chain.perform(operation)
      }
    }

    /** The host's part of an action, before its guest operations. */
    const prepare = (step: PlanStep, action: Action) => {
      switch (action._tag) {
        case "CreateDisk":
          return chain.bootOnNewDisk(action.layout.sizeBytes)
        case "UseBase":
          // The base itself is never written: the first layer is an overlay of it.
          return chain.bootOver(context.base!)
        case "Inspect":
          return context.interactive ? Effect.void : failStep(
            step,
            "INSPECT needs an interactive terminal, and this build has none (remove INSPECT for unattended builds)",
          )
        default:
          return Effect.void
      }
    }

    const perform = Effect.fn("build.perform")(function* (step: PlanStep, action: Action) {
      yield* prepare(step, action)
      for (const operation of actionOperations(action, context.sources.entry)) {
        yield* operate(step, operation)
      }
    })

    /** Every action of `step`, in order. */
    const performStep = (step: PlanStep) =>
      Effect.forEach(step.actions, (action) => perform(step, action), { discard: true })

    /** Boot on a new file over the last cached layer and bring the build root back. */
    const resume = Effect.fn("build.resume")(function* (below: CachedLayer) {
      yield* chain.bootOver(below.path)
      for (const operation of resumeOperations(plan)) yield* chain.perform(operation)
    })

    return { performStep, resume }
  })
