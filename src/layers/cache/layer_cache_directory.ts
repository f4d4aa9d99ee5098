/**
 * LayerCache on a directory (`$TRANSIENT_CACHE_DIR`, else `$XDG_CACHE_HOME/transient`, else
 * `~/.cache/transient`):
 *
 *   layers/KEY.qcow2   a layer, read-only; its backing file is `PARENT.qcow2`, a name relative
 *                      to the layer itself, so the cache can be moved
 *   layers/KEY.json    its record: key, parent, step text, its id and its parent's id; the
 *                      record's mtime is when the layer was last used
 *   layers/lock        held while layers are kept or pruned
 *   work/PID.UUID/     a build's own files, removed when it ends (or by the next build, when the
 *                      process that made them was killed: its lock PID.UUID.lock is free)
 *
 * A layer counts only when its record and its file are both there and its record names the id
 * of the layer before it: a record is written last, by rename, and removed first.
 */
import { readRecordFile } from "../record_file.ts"
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { CacheIoError } from "../../domain/errors/cache.ts"
import {
  alreadyKept,
  isLayerKey,
  type LayerRecord,
  LayerRecordJson,
  newRecord,
  usableChain,
} from "../../domain/layer_record.ts"
import { pruneOrder } from "../../domain/prune.ts"
import { DiskImages } from "../../services/disk_images.ts"
import {
  type CachedLayer,
  LayerCache,
  type LayerCacheShape,
  type LayerEntry,
} from "../../services/layer_cache.ts"
import { isNotFound, OWN_PID, ownedPath, sweepStale } from "../stale_files.ts"
import { lockExclusive } from "../store/locks.ts"

/** Whether `name` is a workspace's, `PID.UUID`. */
const isWorkspaceName = (name: string): boolean => /^\d+\.[0-9a-f-]{36}$/.test(name)

// Long: the cache's operations, each short, share its layout (file and record of a key).
export const LayerCacheDirectory = (
  directory: string,
): Layer.Layer<LayerCache, CacheIoError, FileSystem.FileSystem | Path.Path | DiskImages> =>
  Layer.effect(
    LayerCache,
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const disks = yield* DiskImages
      const root = path.resolve(directory)
      const layers = path.join(root, "layers")
      const work = path.join(root, "work")
      const fileOf = (key: string) => path.join(layers, `${key}.qcow2`)
      const recordOf = (key: string) => path.join(layers, `${key}.json`)
      const io = (operation: CacheIoError["operation"], at: string) => (cause: unknown) =>
        new CacheIoError({ operation, path: at, cause })

      yield* Effect.forEach([layers, work], (dir) => fs.makeDirectory(dir, { recursive: true }))
        .pipe(
          Effect.zipRight(sweepStale(work, isWorkspaceName)),
          Effect.mapError(io("open", root)),
        )

      /** The record of `key`, when it and its layer's file are both there. */
      const recordFor = (key: string): Effect.Effect<Option.Option<LayerRecord>> =>
        Effect.gen(function* () {
          const text = yield* readRecordFile(recordOf(key))
          const record = yield* Schema.decode(LayerRecordJson)(text)
          if (record.key !== key || !(yield* fs.exists(fileOf(key)))) return Option.none()
          return Option.some(record)
        }).pipe(Effect.orElseSucceed(() => Option.none<LayerRecord>()))

      const cached = (record: LayerRecord): CachedLayer => ({
        key: record.key,
        path: fileOf(record.key),
        id: record.id,
        ...(record.parent === undefined ? {} : { parent: record.parent }),
        text: record.text,
      })

      const hits = Effect.fn("LayerCache.hits")(function* (
        keys: ReadonlyArray<string>,
        base?: string,
      ) {
        const records = new Map<string, LayerRecord>()
        // Read until the first key without a valid record: the chain cannot go past it.
        for (const key of keys) {
          const record = yield* recordFor(key)
          if (Option.isNone(record)) break
          records.set(key, record.value)
        }
        const found = usableChain(keys, base, (key) => records.get(key)).map(cached)
        const now = new Date()
        yield* Effect.forEach(
          found,
          (layer) => Effect.ignore(fs.utimes(recordOf(layer.key), now, now)),
        )
        return found
      })

      // Owned through its lock, so no other build (another PID namespace included) sweeps it.
      const workspace = Effect.suspend(() => {
        const dir = path.join(work, `${OWN_PID}.${crypto.randomUUID()}`)
        return ownedPath(dir).pipe(
          Effect.zipRight(fs.makeDirectory(dir, { mode: 0o700 })),
          Effect.as(dir),
          Effect.provideService(FileSystem.FileSystem, fs),
          Effect.mapError(io("write", dir)),
        )
      })

      const writeRecord = (record: LayerRecord) =>
        Effect.gen(function* () {
          const temporary = `${recordOf(record.key)}.${OWN_PID}.tmp`
          yield* fs.writeFileString(temporary, yield* Schema.encode(LayerRecordJson)(record))
          yield* fs.rename(temporary, recordOf(record.key))
        })

      const keep: LayerCacheShape["keep"] = Effect.fn("LayerCache.keep")(
        function* (parent, finished, { replace, base }) {
          yield* lockExclusive(path.join(layers, "lock")).pipe(Effect.mapError(io("lock", root)))
          const kept: Array<CachedLayer> = []
          let below = parent
          for (const layer of finished) {
            if (!isLayerKey(layer.key)) break
            const existing = yield* recordFor(layer.key)
            if (alreadyKept(Option.getOrUndefined(existing), below, replace)) break
            const target = fileOf(layer.key)
            if (below !== undefined) {
              yield* disks.rebase({ path: layer.path, backing: path.basename(below.path) })
                .pipe(Effect.mapError(io("write", layer.path)))
            }
            const record = newRecord(layer, below, base, crypto.randomUUID(), Date.now())
            yield* Effect.gen(function* () {
              yield* fs.chmod(layer.path, 0o444)
              // The record goes first, so a record of another write never names this file.
              yield* fs.remove(recordOf(layer.key)).pipe(
                Effect.catchIf(isNotFound, () => Effect.void),
              )
              yield* fs.rename(layer.path, target)
              yield* writeRecord(record)
            }).pipe(Effect.mapError(io("write", target)))
            below = cached(record)
            kept.push(below)
          }
          return kept
        },
        Effect.scoped,
      )

      const entryOf = (name: string): Effect.Effect<Option.Option<LayerEntry>, PlatformError> =>
        Effect.gen(function* () {
          const key = name.slice(0, -".json".length)
          const record = yield* recordFor(key)
          if (Option.isNone(record)) return Option.none()
          const [file, used] = yield* Effect.all([
            fs.stat(fileOf(key)),
            fs.stat(recordOf(key)),
          ])
          const { parent, text, createdMs } = record.value
          return Option.some({
            key,
            ...(parent === undefined ? {} : { parent }),
            text,
            sizeBytes: Option.getOrElse(file.blocks, () => 0) * 512 ||
              Number(file.size),
            createdMs,
            lastUsedMs: Option.getOrElse(
              Option.map(used.mtime, (date) => date.getTime()),
              () => createdMs,
            ),
          })
        }).pipe(Effect.catchIf(isNotFound, () => Effect.succeed(Option.none())))

      const list = Effect.gen(function* () {
        const names = yield* fs.readDirectory(layers)
        const records = names.filter((name) =>
          name.endsWith(".json") && isLayerKey(name.slice(0, -5))
        )
        const entries = yield* Effect.forEach(records, entryOf)
        return entries.flatMap(Option.toArray).sort((a, b) => b.lastUsedMs - a.lastUsedMs)
      }).pipe(Effect.mapError(io("read", layers)), Effect.withSpan("LayerCache.list"))

      const prune: LayerCacheShape["prune"] = Effect.fn("LayerCache.prune")(
        function* (options) {
          yield* lockExclusive(path.join(layers, "lock")).pipe(Effect.mapError(io("lock", root)))
          const doomed = pruneOrder(yield* list, options)
          yield* Effect.forEach(doomed, (entry) =>
            Effect.forEach(
              [recordOf(entry.key), fileOf(entry.key)],
              (file) =>
                fs.remove(file).pipe(
                  Effect.catchIf(isNotFound, () => Effect.void),
                  Effect.mapError(io("remove", file)),
                ),
            ))
          if (options.all) {
            // Files without a record: left by a process killed while it kept them.
            const names = yield* fs.readDirectory(layers).pipe(Effect.mapError(io("read", layers)))
            yield* Effect.forEach(
              names.filter((name) => name.endsWith(".qcow2") || name.endsWith(".tmp")),
              (name) => Effect.ignore(fs.remove(path.join(layers, name))),
            )
          }
          return {
            removed: doomed.length,
            freedBytes: doomed.reduce((sum, entry) => sum + entry.sizeBytes, 0),
          }
        },
        Effect.scoped,
      )

      return LayerCache.of({ root, hits, workspace, keep, list, prune })
    }),
  )
