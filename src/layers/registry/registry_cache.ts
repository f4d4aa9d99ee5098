/**
 * A build cache in a registry (`build --cache-to REF`, `--cache-from REF`): the step cache's
 * layers as blobs of one OCI artifact whose manifest maps each step key (and its parent's key) to
 * the layer holding that step's result.
 *
 * - `cache-from` is a LayerCache over the local one: what the local cache lacks of a build's
 *   leading run of keys, it downloads from the first registry that has more of it, verifies,
 *   points at its local parent and keeps locally, as though it had been built here. A registry
 *   that cannot be read is a warning: the build goes on without it.
 * - `cache-to` pushes a finished build's chain: layers the registry's map already has under the
 *   same key and parent are not uploaded again.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpBody from "@effect/platform/HttpBody"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { PROBE_BYTES, probeLayer } from "../../domain/image_format.ts"
import {
  cacheEntries,
  type CacheEntry,
  cacheManifest,
  EMPTY_CONFIG,
  jsonBytes,
  Manifest,
  MANIFEST_ACCEPT,
  MediaType,
} from "../../domain/oci_manifest.ts"
import { formatOciReference, parseOciReference } from "../../domain/oci_reference.ts"
import {
  InvalidOciReference,
  NotABuildCache,
  NotADiskImage,
  RegistryRefused,
} from "../../domain/registry_errors.ts"
import { DiskImages } from "../../services/disk_images.ts"
import { type CachedLayer, LayerCache, type LayerCacheShape } from "../../services/layer_cache.ts"
import { Reporter } from "../../services/reporter.ts"
import { download } from "../store/download.ts"
import { openBlob } from "../store/oci_source.ts"
import { fileBlob } from "./blob_source.ts"
import { uploadBlob, uploadBytes } from "./push.ts"
import {
  openRegistry,
  type RegistryOptions,
  type RegistryRequirements,
  type RegistrySession,
} from "./registry_client.ts"

/** A reference to read or write, with a tag (`latest` when none is given). */
const sessionFor = (text: string, action: "pull" | "push", options: RegistryOptions) =>
  Effect.gen(function* () {
    const reference = yield* Either.mapLeft(
      parseOciReference(text),
      (reason) =>
        new NotADiskImage({ reference: text, reason: `not a registry reference: ${reason}` }),
    )
    return yield* openRegistry(reference, action, options)
  })

/** The cache map at the session's tag; empty when the tag does not exist yet. */
const readMap = (session: RegistrySession) =>
  Effect.scoped(Effect.gen(function* () {
    const operation = `read the build cache ${session.describe}`
    const tag = session.reference.digest ?? session.reference.tag ?? "latest"
    const response = yield* session.send({
      method: "GET",
      path: `manifests/${tag}`,
      headers: { accept: MANIFEST_ACCEPT },
      operation,
    })
    if (response.status === 404) return [] as ReadonlyArray<CacheEntry>
    if (response.status !== 200) return yield* session.failure(response, operation)
    const text = yield* response.text.pipe(
      Effect.mapError((error) =>
        new RegistryRefused({
          registry: session.reference.registry,
          operation,
          detail: error.message,
        })
      ),
    )
    const notCache = (reason: string) => new NotABuildCache({ reference: session.describe, reason })
    const manifest = yield* Effect.try(() => JSON.parse(text) as unknown).pipe(
      Effect.flatMap(Schema.decodeUnknown(Manifest)),
      Effect.mapError(() => notCache("its manifest is not an OCI image manifest")),
    )
    return yield* Either.mapLeft(cacheEntries(manifest), notCache)
  }))

/**
 * The longest run of `keys` from `from` on that `entries` chain together, each on the one before
 * it (`parent`: the key of the layer below `keys[from]`).
 */
export const chainIn = (
  entries: ReadonlyArray<CacheEntry>,
  keys: ReadonlyArray<string>,
  from: number,
  parent: string | undefined,
): ReadonlyArray<CacheEntry> => {
  const chain: Array<CacheEntry> = []
  let below = parent
  for (const key of keys.slice(from)) {
    const entry = entries.find((candidate) => candidate.key === key && candidate.parent === below)
    if (entry === undefined) break
    chain.push(entry)
    below = key
  }
  return chain
}

/** The local cache, extended by `references` for what it lacks. */
export const LayerCacheWithRegistries = (
  references: ReadonlyArray<string>,
  options: RegistryOptions,
): Layer.Layer<
  LayerCache,
  never,
  LayerCache | DiskImages | Reporter | FileSystem.FileSystem | RegistryRequirements
> =>
  Layer.effect(
    LayerCache,
    Effect.gen(function* () {
      const local = yield* LayerCache
      const context = yield* Effect.context<
        DiskImages | Reporter | FileSystem.FileSystem | RegistryRequirements
      >()

      /** Download `chain` from `session` and keep it locally on `below` (or on `base`). */
      const fetchChain = (
        session: RegistrySession,
        chain: ReadonlyArray<CacheEntry>,
        below: CachedLayer | undefined,
        base: string | undefined,
      ) =>
        Effect.scoped(Effect.gen(function* () {
          const disks = yield* DiskImages
          const fs = yield* FileSystem.FileSystem
          const workspace = yield* local.workspace
          const kept: Array<CachedLayer> = []
          let parent = below
          for (const entry of chain) {
            const file = `${workspace}/${entry.key}.qcow2`
            yield* download(
              { name: `cache layer ${entry.key.slice(0, 12)}`, source: { _tag: "Named" } },
              {
                describe: `layer ${entry.digest} of ${session.describe}`,
                label: `Cache layer ${entry.key.slice(0, 12)} from ${session.describe}`,
              },
              openBlob(session, {
                mediaType: MediaType.cacheLayer,
                digest: entry.digest,
                size: entry.size,
              }),
              file,
              { maxImageBytes: Number.MAX_SAFE_INTEGER },
            )
            // Another machine's file: it may name any backing file, so it is checked, and its
            // backing file is set to the layer it sits on here before anything opens it.
            const head = yield* fs.open(file, { flag: "r" }).pipe(
              Effect.flatMap((opened) => opened.readAlloc(PROBE_BYTES)),
              Effect.scoped,
            )
            const probe = probeLayer(head._tag === "Some" ? head.value : new Uint8Array())
            if (probe._tag === "Refused") {
              return yield* new NotADiskImage({
                reference: session.describe,
                reason: `its layer ${entry.digest} is refused: ${probe.reason}`,
              })
            }
            const backing = parent?.path ?? base
            if (backing !== undefined) yield* disks.rebase({ path: file, backing })
            else {
              const info = yield* disks.info(file, "qcow2")
              if (info.backingFile !== undefined) {
                return yield* new NotADiskImage({
                  reference: session.describe,
                  reason: `its first layer ${entry.digest} refers to a backing file`,
                })
              }
            }
            yield* disks.check(file)
            const [layer] = yield* local.keep(parent, [{
              key: entry.key,
              text: entry.text,
              path: file,
            }], {
              replace: false,
              ...(base === undefined ? {} : { base }),
            })
            if (layer === undefined) break
            parent = { ...layer, source: session.describe }
            kept.push(parent)
          }
          return kept
        }))

      const hits: LayerCacheShape["hits"] = (keys, base) =>
        Effect.gen(function* () {
          const found = yield* local.hits(keys, base)
          if (found.length === keys.length || references.length === 0) return found
          const reporter = yield* Reporter
          const below = found.at(-1)
          let best: { session: RegistrySession; chain: ReadonlyArray<CacheEntry> } | undefined
          for (const text of references) {
            const read = yield* Effect.either(Effect.flatMap(
              sessionFor(text, "pull", options),
              (session) => Effect.map(readMap(session), (entries) => ({ session, entries })),
            ))
            if (Either.isLeft(read)) {
              yield* reporter.warn(`The build cache ${text} was not used: ${read.left.message}`)
              continue
            }
            const chain = chainIn(read.right.entries, keys, found.length, below?.key)
            if (chain.length > (best?.chain.length ?? 0)) {
              best = { session: read.right.session, chain }
            }
          }
          if (best === undefined) {
            return found
          }
          const fetched = yield* Effect.either(fetchChain(best.session, best.chain, below, base))
          if (Either.isLeft(fetched)) {
            yield* reporter.warn(
              `The build cache ${best.session.describe} was not used: ${fetched.left.message}`,
            )
            // What was kept before the failure is a local hit now.
            return yield* local.hits(keys, base)
          }
          return [...found, ...fetched.right]
        }).pipe(Effect.provide(context))

      return LayerCache.of({ ...local, hits })
    }),
  )

/** Push the layers of a finished build to the cache at `reference`; how many were uploaded. */
export const pushBuildCache = (
  reference: string,
  layers: ReadonlyArray<CachedLayer>,
  options: RegistryOptions,
) =>
  Effect.scoped(Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const reporter = yield* Reporter
    const session = yield* sessionFor(reference, "push", options)
    if (session.reference.tag === undefined) {
      return yield* new InvalidOciReference({
        reference,
        reason: "a build cache is pushed to a tag",
      })
    }
    // A map that cannot be read is replaced.
    const existing = yield* readMap(session).pipe(
      Effect.orElseSucceed(() => [] as ReadonlyArray<CacheEntry>),
    )
    const entries: Array<CacheEntry> = []
    let uploaded = 0
    for (const layer of layers) {
      const known = existing.find((entry) =>
        entry.key === layer.key && entry.parent === layer.parent
      )
      const file = yield* fs.open(layer.path, { flag: "r" }).pipe(
        Effect.mapError((cause) =>
          new RegistryRefused({
            registry: session.reference.registry,
            operation: `push the cache layer ${layer.key.slice(0, 12)}`,
            detail: `cannot read ${layer.path}: ${cause.message}`,
          })
        ),
      )
      const size = Number((yield* Effect.orDie(file.stat)).size)
      const blob = yield* uploadBlob(
        session,
        fileBlob(file, size),
        known?.digest,
        `Cache layer ${layer.key.slice(0, 12)} to ${session.describe}`,
        { image: `cache layer ${layer.key.slice(0, 12)}`, path: layer.path },
      )
      if (blob.sent) uploaded++
      entries.push({
        key: layer.key,
        parent: layer.parent,
        text: layer.text,
        digest: blob.digest,
        size,
      })
    }
    // This build's chain, then what the map held for other builds.
    const others = existing.filter((entry) => !entries.some((mine) => mine.key === entry.key))
    const empty = yield* uploadBytes(session, EMPTY_CONFIG)
    const manifest = jsonBytes(cacheManifest(empty, [...entries, ...others]))
    const operation = `store the build cache ${session.describe}`
    const response = yield* session.send({
      method: "PUT",
      path: `manifests/${session.reference.tag}`,
      headers: { "content-type": MediaType.ociManifest },
      body: () => HttpBody.uint8Array(manifest, MediaType.ociManifest),
      operation,
      repeatable: true,
    })
    if (response.status !== 201) return yield* session.failure(response, operation)
    yield* reporter.info(
      `Pushed the build cache to ${formatOciReference(session.reference)}: ${layers.length} ` +
        `layers, ${uploaded} uploaded`,
    )
    return uploaded
  }))
