/**
 * LayerCache in memory: layers are SimDisks of the MemoryWorld under `/cache/layers/`, their
 * records text files beside them, read and chosen by the directory cache's rules
 * (src/domain/layer_record.ts, src/domain/prune.ts): a layer counts when its disk is there and
 * its record decodes and names its parent's id; keeping stops at a key already held on the same
 * parent.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as LayerRecord from "../../domain/layer_record.ts"
import { pruneOrder } from "../../domain/prune.ts"
import {
  type CachedLayer,
  LayerCache,
  type LayerCacheShape,
  type LayerEntry,
} from "../../services/layer_cache.ts"
import { usedBytes } from "./disk_images_memory.ts"
import type { MemoryWorld } from "./world.ts"

const decodeRecord = Schema.decodeEither(LayerRecord.LayerRecordJson)
const encodeRecord = Schema.encodeSync(LayerRecord.LayerRecordJson)

// Long: the cache's operations, each short, share its world, records and clock.
export const LayerCacheMemory = (world: MemoryWorld, root = "/cache") => {
  const fileOf = (key: string) => `${root}/layers/${key}.qcow2`
  const recordOf = (key: string) => `${root}/layers/${key}.json`
  /** When each layer was last used, as the directory cache has its record's mtime. */
  const lastUsed = new Map<string, number>()
  let clock = 0
  let workspaces = 0
  const tick = () => ++clock
  /** The record of `key`, when it decodes and its layer's disk is there. */
  const valid = (key: string): LayerRecord.LayerRecord | undefined => {
    const text = world.files.get(recordOf(key))
    if (text === undefined || !world.disks.has(fileOf(key))) return undefined
    const record = Either.getOrUndefined(decodeRecord(text))
    return record?.key === key ? record : undefined
  }
  const cached = (record: LayerRecord.LayerRecord): CachedLayer => ({
    key: record.key,
    path: fileOf(record.key),
    id: record.id,
    ...(record.parent === undefined ? {} : { parent: record.parent }),
    text: record.text,
  })
  const keys = () =>
    [...world.files.keys()].flatMap((path) => {
      const match = path.startsWith(`${root}/layers/`) && path.endsWith(".json")
        ? path.slice(`${root}/layers/`.length, -".json".length)
        : undefined
      return match !== undefined && LayerRecord.isLayerKey(match) ? [match] : []
    })
  const entries = (): ReadonlyArray<LayerEntry> =>
    keys().flatMap((key) => {
      const record = valid(key)
      const disk = world.disks.get(fileOf(key))
      if (record === undefined || disk === undefined) return []
      return [{
        key,
        ...(record.parent === undefined ? {} : { parent: record.parent }),
        text: record.text,
        sizeBytes: usedBytes(disk),
        createdMs: record.createdMs,
        lastUsedMs: lastUsed.get(key) ?? record.createdMs,
      }]
    })

  const shape: LayerCacheShape = {
    root,
    hits: (keys, base) =>
      Effect.sync(() => {
        const found = LayerRecord.usableChain(keys, base, valid)
        const now = tick()
        for (const record of found) lastUsed.set(record.key, now)
        return found.map(cached)
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
          if (!LayerRecord.isLayerKey(layer.key)) break
          if (LayerRecord.alreadyKept(valid(layer.key), below, replace)) break
          const disk = world.disks.get(layer.path)
          if (!disk) break
          world.files.delete(recordOf(layer.key))
          world.disks.delete(layer.path)
          world.disks.set(fileOf(layer.key), disk)
          const now = tick()
          const record = LayerRecord.newRecord(layer, below, base, crypto.randomUUID(), now)
          world.files.set(recordOf(layer.key), encodeRecord(record))
          lastUsed.set(layer.key, now)
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
          world.files.delete(recordOf(entry.key))
          world.disks.delete(fileOf(entry.key))
          lastUsed.delete(entry.key)
        }
        if (options.all) {
          // Layer files without a valid record, as the directory cache removes them.
          for (const path of [...world.disks.keys()]) {
            if (path.startsWith(`${root}/layers/`)) world.disks.delete(path)
          }
        }
        return {
          removed: doomed.length,
          freedBytes: doomed.reduce((sum, entry) => sum + entry.sizeBytes, 0),
        }
      }),
  }
  return Layer.succeed(LayerCache, shape)
}
