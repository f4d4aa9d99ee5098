/**
 * The steps of a build as the Reporter hears of them (`Step i/N : ...`, then how it ended) and
 * as the result sums them up: a cached step is reported at once, a run one around its work.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type { PlanStep } from "../../domain/plan.ts"
import type { LayerSpec } from "../../domain/step_keys.ts"
import type { CachedLayer } from "../../services/layer_cache.ts"
import { Reporter, type StepSummary } from "../../services/reporter.ts"

export interface StepLog {
  /** Every step reported so far, in order. */
  readonly summaries: ReadonlyArray<StepSummary>
  /** Report the steps of the layers the cache served, each with where it came from. */
  readonly cached: (
    layers: ReadonlyArray<LayerSpec>,
    hits: ReadonlyArray<CachedLayer>,
  ) => Effect.Effect<void>
  /** Report `step` around `work`, timed. */
  readonly ran: <E>(step: PlanStep, work: Effect.Effect<void, E>) => Effect.Effect<void, E>
}

export const makeStepLog = (total: number) =>
  Effect.map(Reporter, (reporter): StepLog => {
    const summaries: Array<StepSummary> = []
    const cached = Effect.fn("build.cachedSteps")(function* (
      layers: ReadonlyArray<LayerSpec>,
      hits: ReadonlyArray<CachedLayer>,
    ) {
      for (const [i, layer] of layers.slice(0, hits.length).entries()) {
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
    })
    const ran = <E>(step: PlanStep, work: Effect.Effect<void, E>) =>
      Effect.gen(function* () {
        yield* reporter.stepStart(step.index, total, step.text)
        const stepStarted = yield* Clock.currentTimeMillis
        yield* work
        const durationMs = (yield* Clock.currentTimeMillis) - stepStarted
        summaries.push({ index: step.index, text: step.text, durationMs })
        yield* reporter.stepEnd(step.index, total, durationMs, { cached: false })
      }).pipe(Effect.withSpan("build.step"))
    return { summaries, cached, ran }
  })
