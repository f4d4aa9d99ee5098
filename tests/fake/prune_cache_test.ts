/**
 * The prune use case on fakes: the step cache's layers beyond a size, or everything with the
 * helper VM's saved states.
 */
import assert from "node:assert/strict"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { pruneCache } from "../../src/app/prune_cache.ts"
import { HelperVmStatesMemory } from "../../src/layers/memory/helper_vm_states_memory.ts"
import { warningsReporter } from "../support/warnings_reporter.ts"
import { LayerCacheMemory } from "../../src/layers/memory/layer_cache_memory.ts"
import { MemoryWorld } from "../../src/layers/memory/world.ts"
import { LayerCache } from "../../src/services/layer_cache.ts"
import { runTest } from "../support/effect.ts"

const MiB = 1024 ** 2

/** A cache holding one chain of two layers, and two saved states of 200 and 300 bytes. */
const setUp = () => {
  const world = new MemoryWorld()
  const layer = Layer.merge(
    LayerCacheMemory(world).pipe(Layer.provide(warningsReporter(() => {}))),
    HelperVmStatesMemory([200, 300]),
  )
  const fill = Effect.gen(function* () {
    const cache = yield* LayerCache
    for (const index of [0, 1]) {
      world.disks.set(`/work/${index}.qcow2`, { sizeBytes: 64 * MiB, partitions: [] })
    }
    yield* cache.keep(undefined, [
      { key: "a".repeat(64), text: "RUN one", path: "/work/0.qcow2" },
      { key: "b".repeat(64), text: "RUN two", path: "/work/1.qcow2" },
    ], { replace: false })
  })
  return { layer, fill }
}

Deno.test("prune --all removes every layer and every saved state", () =>
  runTest(Effect.gen(function* () {
    const { layer, fill } = setUp()
    const result = yield* Effect.zipRight(fill, pruneCache({ all: true, keepBytes: 0 })).pipe(
      Effect.provide(layer),
    )
    assert.equal(result.removed, 2)
    assert.deepEqual(result.states, { count: 2, bytes: 500 })
  })))

Deno.test("a prune to a size leaves the saved states to prune --all", () =>
  runTest(Effect.gen(function* () {
    const { layer, fill } = setUp()
    const [bySize, all] = yield* Effect.zipRight(
      fill,
      Effect.zip(pruneCache({ all: false, keepBytes: 0 }), pruneCache({ all: true, keepBytes: 0 })),
    ).pipe(Effect.provide(layer))
    assert.deepEqual(bySize.states, { count: 0, bytes: 0 })
    assert.deepEqual(all.states, { count: 2, bytes: 500 })
  })))
