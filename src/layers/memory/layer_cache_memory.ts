/**
 * LayerCache in memory: layers are SimDisks of the MemoryWorld under `/cache/layers/`, named by
 * their digest, their records text files beside them, read and chosen by the directory cache's
 * rules (src/domain/layer_record.ts, src/domain/prune.ts): a layer counts when its disk is there,
 * is still the disk it was kept with, and its record continues the chain under it; keeping stops
 * at a key already held on the same parent. A disk's digest is that of its bytes
 * (src/layers/memory/disk_bytes.ts): another disk object at a layer's path has other bytes.
 * Builds pin what they use; a prune leaves pinned disks alone.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { probeLayer } from "../../domain/image_format.ts"
import * as LayerRecord from "../../domain/layer_record.ts"
import { pruneOrder } from "../../domain/prune.ts"
import {
  type CachedLayer,
  LayerCache,
  type LayerCacheShape,
  type LayerEntry,
} from "../../services/layer_cache.ts"
import { Reporter } from "../../services/reporter.ts"
import { usedBytes } from "./disk_images_memory.ts"
import { diskBytes, diskDigest } from "./disk_bytes.ts"
import type { MemoryWorld, SimDisk } from "./world.ts"

const decodeRecord = Schema.decodeEither(LayerRecord.LayerRecordJson)
const encodeRecord = Schema.encodeSync(LayerRecord.LayerRecordJson)

// Long: the cache's operations, each short, share its world, records, pins and clock.
export const LayerCacheMemory = (world: MemoryWorld, root = "/cache") =>
  Layer.effect(
    LayerCache,
    Effect.gen(function* () {
      const reporter = yield* Reporter
      const fileOf = (record: { readonly digest: string }) =>
        `${root}/layers/${LayerRecord.layerFileName(record.digest)}`
      const recordOf = (key: string) => `${root}/layers/${key}.json`
      /** When each layer was last used, as the directory cache has its record's mtime. */
      const lastUsed = new Map<string, number>()
      /** How many builds hold each layer file. */
      const pins = new Map<string, number>()
      let clock = 0
      let workspaces = 0
      const tick = () => ++clock
      /** The record of `key`, when it decodes. */
      const recordFor = (key: string): LayerRecord.LayerRecord | undefined => {
        const text = world.files.get(recordOf(key))
        const record = text === undefined ? undefined : Either.getOrUndefined(decodeRecord(text))
        return record?.key === key ? record : undefined
      }
      /** The record of `key`, when its disk is there too. */
      const counted = (key: string) => {
        const record = recordFor(key)
        return record !== undefined && world.disks.has(fileOf(record)) ? record : undefined
      }
      const cached = (record: LayerRecord.LayerRecord): CachedLayer =>
        LayerRecord.cachedLayer(record, fileOf(record))
      const keys = () =>
        [...world.files.keys()].flatMap((path) => {
          const match = path.startsWith(`${root}/layers/`) && path.endsWith(".json")
            ? path.slice(`${root}/layers/`.length, -".json".length)
            : undefined
          return match !== undefined && LayerRecord.isLayerKey(match) ? [match] : []
        })
      const entries = (): ReadonlyArray<LayerEntry> =>
        keys().flatMap((key) => {
          const record = counted(key)
          const disk = record && world.disks.get(fileOf(record))
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
      const pin = (path: string) =>
        Effect.acquireRelease(
          Effect.sync(() => void pins.set(path, (pins.get(path) ?? 0) + 1)),
          () => Effect.sync(() => void pins.set(path, (pins.get(path) ?? 1) - 1)),
        )
      const pinned = (path: string) => (pins.get(path) ?? 0) > 0

      const hits: LayerCacheShape["hits"] = (keys, base) =>
        Effect.gen(function* () {
          const refused: Array<{ record: LayerRecord.LayerRecord; reason: string }> = []
          /** Why `record`'s disk is not used, as the directory cache checks a file. */
          const refusal = (
            record: LayerRecord.LayerRecord,
            disk: SimDisk,
            below: LayerRecord.LayerRecord | undefined,
          ) => {
            if (diskDigest(disk) !== record.digest) {
              return "its file is not the one it was kept with (changed since)"
            }
            const expected = LayerRecord.expectedBacking(below, base?.identity)
            if (expected === undefined) return "its base image cannot be named"
            const probe = probeLayer(diskBytes(disk), expected.backing)
            return probe._tag === "Refused" ? probe.reason : undefined
          }
          const found = LayerRecord.usableChain(keys, base?.identity, (key, below) => {
            if (refused.length > 0) return undefined
            const record = counted(key)
            const disk = record && world.disks.get(fileOf(record))
            if (record === undefined || disk === undefined) return undefined
            const reason = refusal(record, disk, below)
            if (reason === undefined) return record
            refused.push({ record, reason })
            return undefined
          })
          for (const { record, reason } of refused) {
            yield* reporter.warn(
              `The cached layer ${record.key.slice(0, 12)} (${record.text}) is not used and ` +
                `was removed: ${reason}`,
            )
            world.files.delete(recordOf(record.key))
            world.disks.delete(fileOf(record))
          }
          const now = tick()
          for (const record of found) {
            lastUsed.set(record.key, now)
            yield* pin(fileOf(record))
          }
          return found.map(cached)
        })

      const keep: LayerCacheShape["keep"] = (parent, finished, { replace, base }) =>
        Effect.sync(() => {
          const identity = base?.identity
          const kept: Array<CachedLayer> = []
          let below = parent
          for (const layer of finished) {
            if (!LayerRecord.isLayerKey(layer.key)) break
            if (LayerRecord.alreadyKept(counted(layer.key), below, identity, replace)) break
            const expected = LayerRecord.expectedBacking(below, identity)
            if (expected === undefined) break
            const disk = world.disks.get(layer.path)
            if (!disk) break
            // As the directory cache rebases a layer built here onto its parent's file.
            if (layer.digest === undefined && expected.backing !== undefined) {
              disk.backing = expected.backing
            }
            const digest = diskDigest(disk)
            if (layer.digest !== undefined && digest !== layer.digest) break
            const now = tick()
            const record = LayerRecord.newRecord(layer, below, identity, {
              id: crypto.randomUUID(),
              digest,
              createdMs: now,
            })
            world.files.delete(recordOf(layer.key))
            world.disks.delete(layer.path)
            world.disks.set(fileOf(record), disk)
            world.files.set(recordOf(layer.key), encodeRecord(record))
            lastUsed.set(layer.key, now)
            below = cached(record)
            kept.push(below)
          }
          return kept
        })

      const prune: LayerCacheShape["prune"] = (options) =>
        Effect.sync(() => {
          const doomed = pruneOrder(
            [...entries()].sort((a, b) => b.lastUsedMs - a.lastUsedMs),
            options,
          )
          const removed: Array<LayerEntry> = []
          for (const entry of doomed) {
            const record = recordFor(entry.key)
            if (record === undefined || pinned(fileOf(record))) continue
            world.files.delete(recordOf(entry.key))
            world.disks.delete(fileOf(record))
            lastUsed.delete(entry.key)
            removed.push(entry)
          }
          // Disks no record names, as the directory cache removes them: unless pinned.
          const named = new Set(
            keys().flatMap((key) => {
              const record = recordFor(key)
              return record === undefined ? [] : [fileOf(record)]
            }),
          )
          for (const path of [...world.disks.keys()]) {
            const orphan = path.startsWith(`${root}/layers/`) && !named.has(path) && !pinned(path)
            if (orphan) world.disks.delete(path)
          }
          return {
            removed: removed.length,
            freedBytes: removed.reduce((sum, entry) => sum + entry.sizeBytes, 0),
          }
        })

      return LayerCache.of({
        root,
        hits,
        workspace: Effect.acquireRelease(
          Effect.sync(() => `${root}/work/${++workspaces}`),
          (dir) =>
            Effect.sync(() => {
              for (const path of [...world.disks.keys()]) {
                if (path.startsWith(`${dir}/`)) world.disks.delete(path)
              }
            }),
        ),
        keep,
        list: Effect.sync(() => [...entries()].sort((a, b) => b.lastUsedMs - a.lastUsedMs)),
        prune,
      })
    }),
  )
