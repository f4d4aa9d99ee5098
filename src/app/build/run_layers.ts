/**
 * The part of a build the cache did not serve: resume over the last cached layer (if any), run
 * each layer's steps and close it with a snapshot (all but the image's own last file), run the
 * steps no layer holds, and flush the disk.
 */
import * as Effect from "effect/Effect"
import type { PlanStep } from "../../domain/plan.ts"
import type { CachedLayers } from "./cached_layers.ts"
import type { VmChain } from "./vm_chain.ts"

export const runLayers = Effect.fn("build.layers")(function* <E>(
  cached: CachedLayers,
  chain: VmChain,
  parts: {
    readonly resume: (below: NonNullable<CachedLayers["top"]>) => Effect.Effect<void, E>
    readonly runStep: (step: PlanStep) => Effect.Effect<void, E>
  },
) {
  const { layout, toRun } = cached
  if (cached.top !== undefined) yield* parts.resume(cached.top)
  for (const [i, layer] of toRun.entries()) {
    for (const step of layer.steps) yield* parts.runStep(step)
    const last = i === toRun.length - 1 && layout.uncached.length === 0
    if (!last) yield* chain.closeLayer(layer)
  }
  for (const step of layout.uncached) yield* parts.runStep(step)
  yield* chain.sync
})
