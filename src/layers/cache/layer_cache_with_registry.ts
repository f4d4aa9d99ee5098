/**
 * `build --cache-from REF`: a LayerCache over the local one. What the local cache lacks of a
 * build's leading run of keys, it downloads from the build cache (app/build_cache.ts pushes
 * them) that has more of it, and keeps locally once verified. A registry is untrusted: a map
 * entry counts only when its key, its parent's key and the digest of the layer it was made on
 * agree with this build's chain; a layer is kept only when its bytes have the entry's digest and
 * its header names exactly that parent. A delta is never set on a parent it was not made on:
 * where the local layers differ from the registry's, the registry's are taken from there up. A
 * registry that cannot be read, or a layer that fails, is a warning: the build goes on without.
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { NotABuildCache, NotADiskImage } from "../../domain/errors/registry.ts"
import { PROBE_BYTES, probeLayer } from "../../domain/image_format.ts"
import { type Below, expectedBacking } from "../../domain/layer_record.ts"
import { type CacheEntry, decodeCacheMap, remoteRun } from "../../domain/oci_manifest.ts"
import { DiskImages } from "../../services/disk_images.ts"
import {
  type BaseImage,
  type CachedLayer,
  LayerCache,
  type LayerCacheShape,
} from "../../services/layer_cache.ts"
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

/**
 * The layer just downloaded to `file`, checked before anything opens it: our own probe reads
 * its header (a qcow2 whose backing name is exactly the file of the layer it was made on, or of
 * the base image, and nothing else that names a file), then qemu-img checks its structure alone.
 */
const verify = (
  repository: Repository,
  entry: CacheEntry,
  file: string,
  below: Below | undefined,
  base: string | undefined,
) =>
  Effect.gen(function* () {
    const disks = yield* DiskImages
    const fs = yield* FileSystem.FileSystem
    const head = yield* fs.open(file, { flag: "r" }).pipe(
      Effect.flatMap((opened) => opened.readAlloc(PROBE_BYTES)),
      Effect.scoped,
    )
    const expected = expectedBacking(below, base)
    const probe = expected === undefined
      ? { _tag: "Refused" as const, reason: "its base image cannot be named" }
      : probeLayer(head._tag === "Some" ? head.value : new Uint8Array(), expected.backing)
    if (probe._tag === "Refused") {
      return yield* new NotADiskImage({
        reference: repository.describe,
        reason: `its layer ${entry.digest} is refused: ${probe.reason}`,
      })
    }
    yield* disks.check(file)
  })

/**
 * Download `chain` from `repository`, verify each layer (its digest as it arrives, its header,
 * the layer it was made on) and keep it in `local` on `below` (or as a first layer on `base`).
 * `replace`: the local layers under the same keys are other bytes, which these replace.
 */
const fetchChain = (
  local: LayerCacheShape,
  repository: Repository,
  chain: ReadonlyArray<CacheEntry>,
  below: CachedLayer | undefined,
  options: { readonly base: BaseImage | undefined; readonly replace: boolean },
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
      yield* verify(repository, entry, file, parent, options.base?.identity)
      const [layer] = yield* local.keep(parent, [{
        key: entry.key,
        text: entry.text,
        path: file,
        digest: entry.digest,
      }], {
        replace: options.replace,
        ...(options.base === undefined ? {} : { base: options.base }),
      })
      if (layer === undefined) break
      parent = layer
      kept.push(layer)
    }
    return kept
  }))

/**
 * The best run the caches at `references` hold to extend the local hits `found`; warnings for
 * those unread.
 */
const bestChain = (
  references: ReadonlyArray<string>,
  keys: ReadonlyArray<string>,
  found: ReadonlyArray<CachedLayer>,
  base: string | undefined,
) =>
  Effect.gen(function* () {
    const reporter = yield* Reporter
    let best:
      | { repository: Repository; from: number; chain: ReadonlyArray<CacheEntry> }
      | undefined
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
      const run = remoteRun(read.right.entries, keys, found, base)
      const length = run.from + run.chain.length
      if (run.chain.length > 0 && length > (best ? best.from + best.chain.length : 0)) {
        best = { repository: read.right.repository, ...run }
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
          const best = yield* bestChain(references, keys, found, base?.identity)
          if (best === undefined) return found
          const fetched = yield* Effect.either(
            fetchChain(local, best.repository, best.chain, found[best.from - 1], {
              base,
              replace: best.from < found.length,
            }),
          )
          if (Either.isLeft(fetched)) {
            yield* reporter.warn(
              `The build cache ${best.repository.describe} was not used: ${fetched.left.message}`,
            )
          }
          // Served as any local layer is: checked and pinned. What was kept before a failure
          // is a local hit now.
          const served = yield* local.hits(keys, base)
          const fetchedIds = new Set(Either.getOrElse(fetched, () => []).map((layer) => layer.id))
          return served.map((layer) =>
            fetchedIds.has(layer.id) ? { ...layer, source: best.repository.describe } : layer
          )
        }).pipe(Effect.withSpan("LayerCache.hits"), Effect.provide(context))

      return LayerCache.of({ ...local, hits })
    }),
  )
