/**
 * LayerCache on a directory (`$TRANSIENT_CACHE_DIR`, else `$XDG_CACHE_HOME/transient`, else
 * `~/.cache/transient`):
 *
 *   layers/DIGEST.qcow2     a layer, read-only, named by its sha256; its backing file is its
 *                           parent's, a name relative to the layer itself, so the cache can move
 *   layers/base-ID.qcow2    a link to the store image of identity ID, which first layers on it
 *                           name as their backing file
 *   layers/KEY.json         a key's record: parent, step text, its id, its digest and its
 *                           parent's, its file's stamp; its mtime is when it was last used
 *   layers/lock             held while layers are kept or pruned
 *   work/PID.UUID/          a build's own files, removed when it ends (or by the next build, when
 *                           the process that made them was killed: its lock PID.UUID.lock is free)
 *
 * A layer counts only when its record and its file are both there, its record continues the
 * chain under it (src/domain/layer_record.ts), its file still has its digest (hashed again when
 * its stamp changed) and its header names exactly its parent's file. A record is written last,
 * by rename, and removed first. A build holds a shared lock on each layer it uses; a prune
 * removes only what it can lock exclusively.
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
import { probeLayer } from "../../domain/image_format.ts"
import {
  alreadyKept,
  baseLinkName,
  type Below,
  cachedLayer,
  continuesChain,
  expectedBacking,
  isLayerKey,
  layerFileName,
  type LayerRecord,
  LayerRecordJson,
  needsHashing,
  newRecord,
} from "../../domain/layer_record.ts"
import { pruneOrder } from "../../domain/prune.ts"
import { DiskImages } from "../../services/disk_images.ts"
import {
  type BaseImage,
  type CachedLayer,
  LayerCache,
  type LayerCacheShape,
  type LayerEntry,
} from "../../services/layer_cache.ts"
import { Reporter } from "../../services/reporter.ts"
import { isNotFound, OWN_PID, ownedPath, sweepStale } from "../stale_files.ts"
import { lockExclusive } from "../store/locks.ts"
import {
  digestOfFile,
  digestOfPath,
  headOfFile,
  pinShared,
  rewriteBackingName,
  tryLockExclusive,
} from "./layer_files.ts"

type Checked =
  | { readonly _tag: "Usable" }
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Refused"; readonly reason: string }
const usable: Checked = { _tag: "Usable" }
const refusedBecause = (reason: string): Checked => ({ _tag: "Refused", reason })

/** Whether `name` is a workspace's, `PID.UUID`. */
const isWorkspaceName = (name: string): boolean => /^\d+\.[0-9a-f-]{36}$/.test(name)

// Long: the cache's operations, each short, share its layout (file and record of a key).
export const LayerCacheDirectory = (
  directory: string,
): Layer.Layer<
  LayerCache,
  CacheIoError,
  FileSystem.FileSystem | Path.Path | DiskImages | Reporter
> =>
  Layer.effect(
    LayerCache,
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const disks = yield* DiskImages
      const reporter = yield* Reporter
      const root = path.resolve(directory)
      const layers = path.join(root, "layers")
      const work = path.join(root, "work")
      const fileOf = (record: { readonly digest: string }) =>
        path.join(layers, layerFileName(record.digest))
      const recordOf = (key: string) => path.join(layers, `${key}.json`)
      const io = (operation: CacheIoError["operation"], at: string) => (cause: unknown) =>
        new CacheIoError({ operation, path: at, cause })
      const removeIfThere = (file: string) =>
        fs.remove(file).pipe(Effect.catchIf(isNotFound, () => Effect.void))

      yield* Effect.forEach([layers, work], (dir) => fs.makeDirectory(dir, { recursive: true }))
        .pipe(
          Effect.zipRight(sweepStale(work, isWorkspaceName)),
          Effect.mapError(io("open", root)),
        )

      /**
       * Name `backing` in the header of the layer `file`: in place (the same bytes), else, for
       * a header that rewrite does not cover, by `qemu-img rebase -u`.
       */
      const setBacking = (file: string, backing: string) =>
        rewriteBackingName(file, backing).pipe(
          Effect.mapError(io("write", file)),
          Effect.flatMap((done) =>
            done ? Effect.void : disks.rebase({ path: file, backing }).pipe(
              Effect.mapError(io("write", file)),
            )
          ),
        )

      /** The record of `key`, when it decodes. */
      const recordFor = (key: string): Effect.Effect<Option.Option<LayerRecord>> =>
        Effect.gen(function* () {
          const text = yield* readRecordFile(recordOf(key))
          const record = yield* Schema.decode(LayerRecordJson)(text)
          return record.key === key ? Option.some(record) : Option.none()
        }).pipe(Effect.orElseSucceed(() => Option.none<LayerRecord>()))

      /** The record of `key`, when its layer's file is there too. */
      const counted = (key: string): Effect.Effect<Option.Option<LayerRecord>> =>
        Effect.flatMap(recordFor(key), (record) =>
          Option.isNone(record) ? Effect.succeed(record) : fs.exists(fileOf(record.value)).pipe(
            Effect.map((there) =>
              there ? record : Option.none()
            ),
            Effect.orElseSucceed(() => Option.none<LayerRecord>()),
          ))

      const cached = (record: LayerRecord): CachedLayer => cachedLayer(record, fileOf(record))

      const writeRecord = (record: LayerRecord) =>
        Effect.gen(function* () {
          const temporary = `${recordOf(record.key)}.${OWN_PID}.tmp`
          yield* fs.writeFileString(temporary, yield* Schema.encode(LayerRecordJson)(record))
          yield* fs.rename(temporary, recordOf(record.key))
        })

      /**
       * The link first layers on `base` name as their backing file, pointing at its file in the
       * store now; undefined when its identity cannot name a file.
       */
      const linkBase = (base: BaseImage) =>
        Effect.gen(function* () {
          const name = baseLinkName(base.identity)
          if (name === undefined) return undefined
          const link = path.join(layers, name)
          const target = yield* fs.readLink(link).pipe(Effect.orElseSucceed(() => ""))
          if (target !== base.path) {
            const temporary = `${link}.${OWN_PID}.tmp`
            yield* removeIfThere(temporary)
            yield* fs.symlink(base.path, temporary)
            yield* fs.rename(temporary, link)
          }
          return link
        }).pipe(Effect.mapError(io("write", layers)))

      /**
       * `record`'s layer pinned (until the scope closes) and checked: its bytes are those it was
       * kept with, its header names exactly the file under it.
       */
      const check = (record: LayerRecord, below: Below | undefined, base: string | undefined) =>
        Effect.gen(function* () {
          const pinned = yield* pinShared(fileOf(record))
          if (Option.isNone(pinned)) return { _tag: "Missing" } as const
          const { file: opened, stamp } = pinned.value
          if (needsHashing(record, stamp)) {
            const digest = yield* digestOfFile(opened)
            if (digest !== record.digest) {
              return refusedBecause("its file is not the one it was kept with (changed since)")
            }
            yield* Effect.ignore(writeRecord({ ...record, stamp }))
          }
          const expected = expectedBacking(below, base)
          if (expected === undefined) return refusedBecause("its base image cannot be named")
          const probe = probeLayer(yield* headOfFile(opened), expected.backing)
          return probe._tag === "Refused" ? refusedBecause(probe.reason) : usable
        }).pipe(Effect.orElseSucceed(() => refusedBecause("its file cannot be read")))

      /** A layer refused: a miss with a warning; its record and file are removed. */
      const discard = (record: LayerRecord, reason: string) =>
        Effect.gen(function* () {
          yield* reporter.warn(
            `The cached layer ${record.key.slice(0, 12)} (${record.text}) is not used and was ` +
              `removed: ${reason}`,
          )
          yield* Effect.ignore(removeIfThere(recordOf(record.key)))
          yield* Effect.ignore(removeIfThere(fileOf(record)))
        })

      const hits: LayerCacheShape["hits"] = Effect.fn("LayerCache.hits")(function* (keys, base) {
        if (base !== undefined) {
          const link = yield* linkBase(base).pipe(Effect.orElseSucceed(() => undefined))
          if (link === undefined) return []
          // The store's file, pinned too: `cache prune --all` leaves the link alone.
          yield* pinShared(link)
        }
        const identity = base?.identity
        const found: Array<CachedLayer> = []
        for (const key of keys) {
          const record = yield* recordFor(key)
          const below = found[found.length - 1]
          if (Option.isNone(record) || !continuesChain(record.value, key, below, identity)) break
          const checked = yield* check(record.value, below, identity)
          if (checked._tag === "Missing") break
          if (checked._tag === "Refused") {
            yield* discard(record.value, checked.reason)
            break
          }
          found.push(cached(record.value))
        }
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

      const keep: LayerCacheShape["keep"] = Effect.fn("LayerCache.keep")(
        function* (parent, finished, { replace, base }) {
          yield* lockExclusive(path.join(layers, "lock")).pipe(Effect.mapError(io("lock", root)))
          if (base !== undefined && (yield* linkBase(base)) === undefined) return []
          const identity = base?.identity
          const kept: Array<CachedLayer> = []
          let below = parent
          for (const layer of finished) {
            if (!isLayerKey(layer.key)) break
            const existing = yield* counted(layer.key)
            if (alreadyKept(Option.getOrUndefined(existing), below, identity, replace)) break
            const expected = expectedBacking(below, identity)
            if (expected === undefined) break
            // A layer built here names the build's own files: it gets its parent's name in the
            // cache. One from elsewhere already names it (its header was checked), and is kept
            // byte for byte.
            if (layer.digest === undefined && expected.backing !== undefined) {
              yield* setBacking(layer.path, expected.backing)
            }
            yield* fs.chmod(layer.path, 0o444).pipe(Effect.mapError(io("write", layer.path)))
            const { digest, stamp } = yield* digestOfPath(layer.path).pipe(
              Effect.mapError(io("read", layer.path)),
            )
            if (layer.digest !== undefined && digest !== layer.digest) break
            const record = newRecord(layer, below, identity, {
              id: crypto.randomUUID(),
              digest,
              stamp,
              createdMs: Date.now(),
            })
            const target = fileOf(record)
            yield* Effect.gen(function* () {
              // The record goes first, so that no record names a file being replaced.
              yield* removeIfThere(recordOf(layer.key))
              // Another write of the same digest holds the same bytes: a build using it reads
              // the same either way.
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

      /** Each layer the cache counts, with its record. */
      const entries = Effect.gen(function* () {
        const names = yield* fs.readDirectory(layers)
        const keys = names.flatMap((name) =>
          name.endsWith(".json") && isLayerKey(name.slice(0, -5)) ? [name.slice(0, -5)] : []
        )
        const found = yield* Effect.forEach(keys, entryOf)
        return found.flatMap(Option.toArray)
      })

      const entryOf = (
        key: string,
      ): Effect.Effect<
        Option.Option<{ readonly entry: LayerEntry; readonly record: LayerRecord }>,
        PlatformError
      > =>
        Effect.gen(function* () {
          const record = yield* recordFor(key)
          if (Option.isNone(record)) return Option.none()
          const [file, used] = yield* Effect.all([
            fs.stat(fileOf(record.value)),
            fs.stat(recordOf(key)),
          ])
          const { parent, text, createdMs } = record.value
          const entry: LayerEntry = {
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
          }
          return Option.some({ entry, record: record.value })
        }).pipe(Effect.catchIf(isNotFound, () => Effect.succeed(Option.none())))

      const list = entries.pipe(
        Effect.map((found) =>
          found.map(({ entry }) => entry).sort((a, b) => b.lastUsedMs - a.lastUsedMs)
        ),
        Effect.mapError(io("read", layers)),
        Effect.withSpan("LayerCache.list"),
      )

      /** Remove `file` unless a build holds it; whether it is gone. */
      const removeUnlessPinned = (file: string) =>
        Effect.scoped(Effect.gen(function* () {
          if (!(yield* tryLockExclusive(file)) && (yield* fs.exists(file))) return false
          yield* removeIfThere(file)
          return true
        })).pipe(Effect.mapError(io("remove", file)))

      const prune: LayerCacheShape["prune"] = Effect.fn("LayerCache.prune")(
        function* (options) {
          yield* lockExclusive(path.join(layers, "lock")).pipe(Effect.mapError(io("lock", root)))
          const counted = yield* entries.pipe(Effect.mapError(io("read", layers)))
          const doomed = pruneOrder(
            counted.map(({ entry }) => entry).sort((a, b) => b.lastUsedMs - a.lastUsedMs),
            options,
          )
          const recordByKey = new Map(counted.map(({ record }) => [record.key, record]))
          const removed: Array<LayerEntry> = []
          for (const entry of doomed) {
            const record = recordByKey.get(entry.key)
            if (record === undefined || !(yield* removeUnlessPinned(fileOf(record)))) continue
            yield* removeIfThere(recordOf(entry.key)).pipe(
              Effect.mapError(io("remove", recordOf(entry.key))),
            )
            removed.push(entry)
          }
          // Files no record names (a replaced layer, a build killed while it kept one): gone
          // once no build holds them. The links to base images, only with everything else.
          const named = new Set(
            counted.flatMap(({ record }) =>
              removed.some((entry) => entry.key === record.key)
                ? []
                : [layerFileName(record.digest)]
            ),
          )
          const names = yield* fs.readDirectory(layers).pipe(Effect.mapError(io("read", layers)))
          for (const name of names) {
            const orphan = name.endsWith(".qcow2") && !named.has(name) &&
              (options.all || !name.startsWith("base-"))
            if (orphan) yield* Effect.ignore(removeUnlessPinned(path.join(layers, name)))
            else if (options.all && name.endsWith(".tmp")) {
              yield* Effect.ignore(removeIfThere(path.join(layers, name)))
            }
          }
          return {
            removed: removed.length,
            freedBytes: removed.reduce((sum, entry) => sum + entry.sizeBytes, 0),
          }
        },
        Effect.scoped,
      )

      return LayerCache.of({ root, hits, workspace, keep, list, prune })
    }),
  )
