/**
 * `transient cache prune`, and the prune that ends every build: the step cache's least recently
 * used layers beyond a size, or everything, the helper VM's saved states included.
 */
import * as Effect from "effect/Effect"
import { HelperVmStates, type RemovedStates } from "../services/helper_vm_states.ts"
import { LayerCache, type PruneResult } from "../services/layer_cache.ts"

export interface PruneCacheResult extends PruneResult {
  readonly states: RemovedStates
}

export const pruneCache = Effect.fn("pruneCache")(
  function* (options: { readonly all: boolean; readonly keepBytes: number }) {
    const cache = yield* LayerCache
    const layers = yield* cache.prune(options)
    const states = options.all
      ? yield* Effect.flatMap(HelperVmStates, (states) => states.removeAll)
      : { count: 0, bytes: 0 }
    return { ...layers, states } satisfies PruneCacheResult
  },
)
