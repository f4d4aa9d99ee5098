/**
 * `build --cache-from REF`: a LayerCache over the local one. What the local cache lacks of a
 * build's leading run of keys, it downloads from the first build cache (app/build_cache.ts
 * pushes them) that has more of it, verifies, points at its local parent and keeps locally, as
 * though it had been built here. A registry that cannot be read is a warning: the build goes on
 * without it.
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { NotABuildCache, NotADiskImage } from "../../domain/errors/registry.ts"
import { PROBE_BYTES, probeLayer } from "../../domain/image_format.ts"
import { type CacheEntry, chainIn, decodeCacheMap } from "../../domain/oci_manifest.ts"
import { DiskImages } from "../../services/disk_images.ts"
import { type CachedLayer, LayerCache, type LayerCacheShape } from "../../services/layer_cache.ts"
import { Registry, type Repository, repositoryAt } from "../../services/registry.ts"
import { Reporter } from "../../services/reporter.ts"
import { download } from "../store/download.ts"

/** The cache map at the repository's tag; empty when the tag does not exist yet. */
const readCacheMap = (repository: Repository) =>
  repository.fetchManifest(repository.reference.digest ?? repository.reference.tag ?? "latest")
    .pipe(
      Effect.flatMap((manifest) =>
        Either.mapLeft(
          decodeCacheMap(manifest.bytes),
          (reason) => new NotABuildCache({ reference: repository.describe, reason }),
        )
      ),
      Effect.catchTag("RegistryNotFound", () => Effect.succeed([] as ReadonlyArray<CacheEntry>)),
    )

/** The layer just downloaded to `file`, checked and set on `backing` (or on none). */
const adopt = (
  repository: Repository,
  entry: CacheEntry,
  file: string,
  backing: string | undefined,
) =>
  Effect.gen(function* () {
    const disks = yield* DiskImages
    const fs = yield* FileSystem.FileSystem
    // Another machine's file: it may name any backing file, so it is checked, and its
    // backing file is set to the layer it sits on here before anything opens it.
    const head = yield* fs.open(file, { flag: "r" }).pipe(
      Effect.flatMap((opened) => opened.readAlloc(PROBE_BYTES)),
      Effect.scoped,
    )
    const probe = probeLayer(head._tag === "Some" ? head.value : new Uint8Array())
    if (probe._tag === "Refused") {
      return yield* new NotADiskImage({
        reference: repository.describe,
        reason: `its layer ${entry.digest} is refused: ${probe.reason}`,
      })
    }
    if (backing !== undefined) yield* disks.rebase({ path: file, backing })
    else {
      const info = yield* disks.info(file, "qcow2")
      if (info.backingFile !== undefined) {
        return yield* new NotADiskImage({
          reference: repository.describe,
          reason: `its first layer ${entry.digest} refers to a backing file`,
        })
      }
    }
    yield* disks.check(file)
  })

/** Download `chain` from `repository` and keep it in `local` on `below` (or on `base`). */
const fetchChain = (
  local: LayerCacheShape,
  repository: Repository,
  chain: ReadonlyArray<CacheEntry>,
  below: CachedLayer | undefined,
  base: string | undefined,
) =>
  Effect.scoped(Effect.gen(function* () {
    const workspace = yield* local.workspace
    const kept: Array<CachedLayer> = []
    let parent = below
    for (const entry of chain) {
      const file = `${workspace}/${entry.key}.qcow2`
      const short = entry.key.slice(0, 12)
      yield* download(
        { name: `cache layer ${short}`, source: { _tag: "Named" } },
        {
          describe: `layer ${entry.digest} of ${repository.describe}`,
          label: `Cache layer ${short} from ${repository.describe}`,
        },
        {
          bytes: repository.openBlob({ digest: entry.digest, size: entry.size }),
          size: entry.size,
          checksum: { type: "sha256", value: entry.digest.slice("sha256:".length) },
        },
        file,
        { maxImageBytes: Number.MAX_SAFE_INTEGER },
      )
      yield* adopt(repository, entry, file, parent?.path ?? base)
      const [layer] = yield* local.keep(parent, [{
        key: entry.key,
        text: entry.text,
        path: file,
      }], {
        replace: false,
        ...(base === undefined ? {} : { base }),
      })
      if (layer === undefined) break
      parent = { ...layer, source: repository.describe }
      kept.push(parent)
    }
    return kept
  }))

/**
 * The longest chain the caches at `references` hold past the local hits; warnings for those
 * unread.
 */
const bestChain = (
  references: ReadonlyArray<string>,
  keys: ReadonlyArray<string>,
  from: number,
  below: string | undefined,
) =>
  Effect.gen(function* () {
    const reporter = yield* Reporter
    let best: { repository: Repository; chain: ReadonlyArray<CacheEntry> } | undefined
    for (const text of references) {
      const read = yield* Effect.either(Effect.flatMap(
        repositoryAt(text, "pull"),
        (repository) =>
          Effect.map(readCacheMap(repository), (entries) => ({ repository, entries })),
      ))
      if (Either.isLeft(read)) {
        yield* reporter.warn(`The build cache ${text} was not used: ${read.left.message}`)
        continue
      }
      const chain = chainIn(read.right.entries, keys, from, below)
      if (chain.length > (best?.chain.length ?? 0)) {
        best = { repository: read.right.repository, chain }
      }
    }
    return best
  })

/** What the decorator runs on (download.ts's decompressors want a CommandExecutor). */
export type LayerCacheWithRegistryRequirements =
  | LayerCache
  | DiskImages
  | Reporter
  | Registry
  | FileSystem.FileSystem
  | HttpClient.HttpClient
  | CommandExecutor.CommandExecutor

/** The local cache, extended by the build caches at `references` for what it lacks. */
export const LayerCacheWithRegistry = (
  references: ReadonlyArray<string>,
): Layer.Layer<
  LayerCache,
  never,
  LayerCacheWithRegistryRequirements
> =>
  Layer.effect(
    LayerCache,
    Effect.gen(function* () {
      const local = yield* LayerCache
      const context = yield* Effect.context<
        Exclude<LayerCacheWithRegistryRequirements, LayerCache>
      >()

      const hits: LayerCacheShape["hits"] = (keys, base) =>
        Effect.gen(function* () {
          const found = yield* local.hits(keys, base)
          if (found.length === keys.length || references.length === 0) return found
          const reporter = yield* Reporter
          const below = found.at(-1)
          const best = yield* bestChain(references, keys, found.length, below?.key)
          if (best === undefined) return found
          const fetched = yield* Effect.either(
            fetchChain(local, best.repository, best.chain, below, base),
          )
          if (Either.isLeft(fetched)) {
            yield* reporter.warn(
              `The build cache ${best.repository.describe} was not used: ${fetched.left.message}`,
            )
            // What was kept before the failure is a local hit now.
            return yield* local.hits(keys, base)
          }
          return [...found, ...fetched.right]
        }).pipe(Effect.withSpan("LayerCache.hits"), Effect.provide(context))

      return LayerCache.of({ ...local, hits })
    }),
  )
