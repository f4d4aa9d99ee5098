/**
 * The step cache's side of a build: the plan cut into layers with their keys
 * (src/domain/step_keys.ts), and the leading run of them the cache already holds.
 */
import * as Effect from "effect/Effect"
import type { BuildPlan } from "../../domain/plan.ts"
import { type CachePlan, cachePlan, type LayerSpec } from "../../domain/step_keys.ts"
import { BuildVm } from "../../services/build_vm.ts"
import { ImageStore, type StoredImage } from "../../services/image_store.ts"
import { type BaseImage, type CachedLayer, LayerCache } from "../../services/layer_cache.ts"

export interface CachedLayers {
  readonly layout: CachePlan
  /** The plan's first layers, which the cache serves. */
  readonly hits: ReadonlyArray<CachedLayer>
  /** The layers after them, which this build runs. */
  readonly toRun: ReadonlyArray<LayerSpec>
  /** The last layer served, which the rest of the build starts on. */
  readonly top: CachedLayer | undefined
  /** Whether the cache holds the whole image: no VM at all. */
  readonly complete: boolean
  /** The base image first layers are overlays of (`FROM <image>`), with its identity. */
  readonly base: BaseImage | undefined
}

export const findCachedLayers = Effect.fn("build.keys")(function* (
  plan: BuildPlan,
  inputs: {
    readonly base: StoredImage | undefined
    readonly sourceDigests: ReadonlyMap<string, string>
    readonly useCache: boolean
  },
) {
  const base: BaseImage | undefined = inputs.base === undefined
    ? undefined
    : { path: inputs.base.path, identity: yield* (yield* ImageStore).identity(inputs.base) }
  const layout = cachePlan(plan, {
    artifacts: (yield* BuildVm).identity,
    ...(base === undefined ? {} : { base: base.identity }),
    sources: inputs.sourceDigests,
  })
  // Pinned until the build ends: nothing removes or replaces them under it.
  const hits = inputs.useCache
    ? yield* (yield* LayerCache).hits(layout.layers.map((layer) => layer.key), base)
    : []
  const toRun = layout.layers.slice(hits.length)
  const top = hits[hits.length - 1]
  return {
    layout,
    hits,
    toRun,
    top,
    complete: top !== undefined && toRun.length === 0 && layout.uncached.length === 0,
    base,
  } satisfies CachedLayers
})
