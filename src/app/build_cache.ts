/**
 * `build --cache-to REF`: a finished build's chain of step layers pushed to a build cache in a
 * registry — one OCI artifact whose manifest maps each step key (with its parent's key and the
 * digest of the layer it was made on) to the blob holding that step's layer. Layers the map
 * already has under the same key and digest are not uploaded again; what the map held for other
 * builds is kept.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { fileContent } from "../domain/blob_content.ts"
import {
  InvalidOciReference,
  type RegistryError,
  RegistryRefused,
} from "../domain/errors/registry.ts"
import {
  type CacheEntry,
  cacheManifest,
  decodeCacheMap,
  EMPTY_CONFIG,
  jsonBytes,
  MediaType,
  mergedCacheEntries,
} from "../domain/oci_manifest.ts"
import { formatOciReference } from "../domain/oci_reference.ts"
import type { CachedLayer } from "../services/layer_cache.ts"
import { type Repository, repositoryAt } from "../services/registry.ts"
import { Reporter } from "../services/reporter.ts"
import { uploadBytes, uploadUnlessPresent } from "./push_image.ts"

/** The cache map at the repository's tag; empty when the tag does not exist yet. */
const readCacheMap = (
  repository: Repository,
): Effect.Effect<Either.Either<ReadonlyArray<CacheEntry>, string>, RegistryError> =>
  repository.fetchManifest(repository.reference.digest ?? repository.reference.tag ?? "latest")
    .pipe(
      Effect.map((manifest) => decodeCacheMap(manifest.bytes)),
      Effect.catchTag(
        "RegistryNotFound",
        () => Effect.succeed(Either.right<ReadonlyArray<CacheEntry>>([])),
      ),
    )

/** Push the layers of a finished build to the cache at `reference`; how many were uploaded. */
export const pushBuildCache = Effect.fn("pushBuildCache")(function* (
  reference: string,
  layers: ReadonlyArray<CachedLayer>,
) {
  const fs = yield* FileSystem.FileSystem
  const reporter = yield* Reporter
  const repository = yield* repositoryAt(reference, "push")
  if (repository.reference.tag === undefined) {
    return yield* new InvalidOciReference({ reference, reason: "a build cache is pushed to a tag" })
  }
  // A map that cannot be read is replaced.
  const existing = yield* readCacheMap(repository).pipe(
    Effect.map(Either.getOrElse((): ReadonlyArray<CacheEntry> => [])),
    Effect.orElseSucceed((): ReadonlyArray<CacheEntry> => []),
  )
  const registry = repository.reference.registry
  const entries: Array<CacheEntry> = []
  let uploaded = 0
  for (const layer of layers) {
    const short = layer.key.slice(0, 12)
    const unreadable = (cause: { readonly message: string }) =>
      new RegistryRefused({
        registry,
        operation: `push the cache layer ${short}`,
        detail: `cannot read ${layer.path}: ${cause.message}`,
      })
    // Its digest is known: the registry's copy is these bytes only under that digest.
    const known = existing.find((entry) => entry.key === layer.key && entry.digest === layer.digest)
    const file = yield* fs.open(layer.path, { flag: "r" }).pipe(Effect.mapError(unreadable))
    const size = Number((yield* Effect.orDie(file.stat)).size)
    const blob = yield* uploadUnlessPresent(
      repository,
      fileContent(file, size),
      known?.digest,
      `Cache layer ${short} to ${repository.describe}`,
    ).pipe(
      Effect.catchTag(
        "BlobUnreadable",
        (error) => Effect.fail(unreadable({ message: String(error.cause) })),
      ),
    )
    if (blob.sent) uploaded++
    entries.push({
      key: layer.key,
      parent: layer.parent,
      parentDigest: layer.parentDigest,
      text: layer.text,
      digest: blob.digest,
      size,
    })
  }
  const empty = yield* uploadBytes(repository, EMPTY_CONFIG).pipe(
    Effect.catchTag("BlobUnreadable", (error) => Effect.die(error)),
  )
  const manifest = jsonBytes(cacheManifest(empty, mergedCacheEntries(entries, existing)))
  yield* repository.putManifest(repository.reference.tag, manifest, MediaType.ociManifest)
  yield* reporter.info(
    `Pushed the build cache to ${formatOciReference(repository.reference)}: ${layers.length} ` +
      `layers, ${uploaded} uploaded`,
  )
  return uploaded
}, Effect.scoped)
