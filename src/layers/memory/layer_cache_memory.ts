/**
 * LayerCache in memory: layers are SimDisks of the MemoryWorld under `/cache/layers/`, with the
 * directory cache's rules (src/layers/cache/layer_cache_directory.ts): a layer counts when its
 * disk is there and its record names its parent's id; keeping stops at a key already held on
 * the same parent.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import {
  type CachedLayer,
  LayerCache,
  type LayerCacheShape,
  type LayerEntry,
  type LayerRecord,
  newRecord,
  pruneOrder,
} from "../../services/layer_cache.ts"
import { usedBytes } from "./disk_images_memory.ts"
import type { MemoryWorld } from "./world.ts"

interface MemoryRecord extends LayerRecord {
  lastUsedMs: number
}

export const LayerCacheMemory = (world: MemoryWorld, root = "/cache") => {
  const records = new Map<string, MemoryRecord>()
  const fileOf = (key: string) => `${root}/layers/${key}.qcow2`
  let clock = 0
  let workspaces = 0
  const tick = () => ++clock
  const valid = (key: string) => {
    const record = records.get(key)
    return record !== undefined && world.disks.has(fileOf(key)) ? record : undefined
  }
  const cached = (record: MemoryRecord): CachedLayer => ({
    key: record.key,
    path: fileOf(record.key),
    id: record.id,
    ...(record.parent === undefined ? {} : { parent: record.parent }),
    text: record.text,
  })
  const entries = (): ReadonlyArray<LayerEntry> =>
    [...records.values()].filter((record) => valid(record.key)).map((record) => {
      const disk = world.disks.get(fileOf(record.key))
      return {
        key: record.key,
        ...(record.parent === undefined ? {} : { parent: record.parent }),
        text: record.text,
        sizeBytes: disk ? usedBytes(disk) : 0,
        createdMs: record.createdMs,
        lastUsedMs: record.lastUsedMs,
      }
    })

  const shape: LayerCacheShape = {
    root,
    hits: (keys, base) =>
      Effect.sync(() => {
        const found: Array<CachedLayer> = []
        for (const key of keys) {
          const record = valid(key)
          if (!record || record.parentId !== found[found.length - 1]?.id) break
          if (found.length === 0 && record.base !== base) break
          record.lastUsedMs = tick()
          found.push(cached(record))
        }
        return found
      }),
    workspace: Effect.acquireRelease(
      Effect.sync(() => `${root}/work/${++workspaces}`),
      (dir) =>
        Effect.sync(() => {
          for (const path of [...world.disks.keys()]) {
            if (path.startsWith(`${dir}/`)) world.disks.delete(path)
          }
        }),
    ),
    keep: (parent, finished, { replace, base }) =>
      Effect.sync(() => {
        const kept: Array<CachedLayer> = []
        let below = parent
        for (const layer of finished) {
          const existing = valid(layer.key)
          if (!replace && existing && existing.parentId === below?.id) break
          const disk = world.disks.get(layer.path)
          if (!disk) break
          world.disks.delete(layer.path)
          world.disks.set(fileOf(layer.key), disk)
          const now = tick()
          const record: MemoryRecord = { ...newRecord(layer, below, base, now), lastUsedMs: now }
          records.set(layer.key, record)
          below = cached(record)
          kept.push(below)
        }
        return kept
      }),
    list: Effect.sync(() => [...entries()].sort((a, b) => b.lastUsedMs - a.lastUsedMs)),
    prune: (options) =>
      Effect.sync(() => {
        const doomed = pruneOrder(entries(), options)
        for (const entry of doomed) {
          records.delete(entry.key)
          world.disks.delete(fileOf(entry.key))
        }
        return {
          removed: doomed.length,
          freedBytes: doomed.reduce((sum, entry) => sum + entry.sizeBytes, 0),
        }
      }),
  }
  return Layer.succeed(LayerCache, shape)
}
