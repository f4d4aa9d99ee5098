/**
 * An OCI image read from its blob store: a manifest or index (Docker's schema 1 refused), through
 * an index to the entry for the platform, its config checked to serve that platform, and its
 * layers' media types checked to be those of root filesystem tars.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import {
  decodeJson,
  diffIdsOf,
  ImageConfig,
  layerCompression,
  platformMismatch,
  recordedConfig,
  SCHEMA1_MEDIA_TYPES,
} from "../../domain/container_image.ts"
import {
  ContainerImageNotFound,
  ContainerJsonMalformed,
  ContainerMediaTypeUnsupported,
  ContainerPlatformMismatch,
  ContainerPlatformMissing,
} from "../../domain/errors/container.ts"
import { Index, isIndex, Manifest, MediaType } from "../../domain/oci_manifest.ts"
import { formatPlatform, type Platform, selectPlatformEntry } from "../../domain/platform.ts"
import { type BlobStore, checkedDigest, type Document } from "./blob_store.ts"

/** The annotation naming an image in an OCI layout's index.json. */
const REF_NAME = "org.opencontainers.image.ref.name"

export const parsed = <A, I>(source: string, document: string, schema: Schema.Schema<A, I>) =>
(
  bytes: Uint8Array,
) =>
  Either.mapLeft(
    decodeJson(schema)(bytes),
    (reason) => new ContainerJsonMalformed({ source, document, reason }),
  )

const ManifestOrIndex = Schema.Union(Manifest, Index)
const SchemaVersion = Schema.Struct({
  schemaVersion: Schema.Number,
  mediaType: Schema.optional(Schema.String),
})

/** The manifest or index in `document`, Docker's schema 1 refused by name. */
const manifestOrIndex = (source: string, document: Document) =>
  Effect.gen(function* () {
    const head = yield* parsed(source, "manifest", SchemaVersion)(document.bytes)
    if (head.schemaVersion === 1 || SCHEMA1_MEDIA_TYPES.includes(head.mediaType ?? "")) {
      return yield* new ContainerMediaTypeUnsupported({
        source,
        what: "its manifest",
        mediaType: head.mediaType ?? "Docker schema 1",
        hint: "Docker's schema 1 is withdrawn; copy the image again with a current tool",
      })
    }
    return yield* parsed(source, "manifest", ManifestOrIndex)(document.bytes)
  })

export const missingPlatform = (source: string, platform: Platform) => (reason: string) =>
  new ContainerPlatformMissing({ source, platform: formatPlatform(platform), reason })

/** The image `top` stands for on `platform`: through an index to its entry, then its config. */
export const resolveOci = (
  source: string,
  store: BlobStore,
  top: Document,
  platform: Platform,
) =>
  Effect.gen(function* () {
    let document = top
    let manifest = yield* manifestOrIndex(source, document)
    if (isIndex(manifest)) {
      const entry = yield* Either.mapLeft(
        selectPlatformEntry(manifest.manifests, platform),
        missingPlatform(source, platform),
      )
      document = yield* store.document(entry, "manifest")
      manifest = yield* manifestOrIndex(source, document)
      if (isIndex(manifest)) {
        return yield* new ContainerMediaTypeUnsupported({
          source,
          what: `entry ${entry.digest} of its index`,
          mediaType: manifest.mediaType ?? MediaType.ociIndex,
          hint: "an index inside an index is not followed",
        })
      }
    }
    const configType = manifest.config.mediaType
    if (configType !== MediaType.ociConfig && configType !== MediaType.dockerConfig) {
      return yield* new ContainerMediaTypeUnsupported({
        source,
        what: "a config",
        mediaType: configType,
        hint: "it is not a container image",
      })
    }
    for (const layer of manifest.layers) {
      yield* checkedDigest(source, layer)
      if (layerCompression(layer.mediaType) === undefined) {
        return yield* new ContainerMediaTypeUnsupported({
          source,
          what: `layer ${layer.digest}`,
          mediaType: layer.mediaType,
          hint: "a layer must be a tar, uncompressed or compressed with gzip or zstd",
        })
      }
    }
    const config = yield* store.document(manifest.config, "config")
    const image = yield* configOf(source, config.bytes, platform)
    if (image.diffIds.length !== manifest.layers.length) {
      return yield* new ContainerJsonMalformed({
        source,
        document: "config",
        reason: `it lists ${image.diffIds.length} layers, its manifest ${manifest.layers.length}`,
      })
    }
    return {
      manifestDigest: document.digest,
      configDigest: config.digest,
      config: image.config,
      diffIds: image.diffIds,
      layers: manifest.layers.map((layer) => ({
        digest: layer.digest,
        size: layer.size,
        mediaType: layer.mediaType,
      })),
    }
  })

/** The config in `bytes`, checked to serve `platform`. */
export const configOf = (source: string, bytes: Uint8Array, platform: Platform) =>
  Effect.gen(function* () {
    const config = yield* parsed(source, "config", ImageConfig)(bytes)
    const mismatch = platformMismatch(config, platform)
    if (mismatch !== undefined) {
      return yield* new ContainerPlatformMismatch({
        source,
        platform: mismatch.wanted,
        configured: mismatch.configured,
      })
    }
    const diffIds = yield* Either.mapLeft(
      diffIdsOf(config),
      (reason) => new ContainerJsonMalformed({ source, document: "config", reason }),
    )
    return { config: recordedConfig(config), diffIds }
  })

/**
 * The image an OCI layout's `index` names: the entries tagged `tag` (all, without one); one
 * is read, several are told apart by platform.
 */
export const pickFromLayout = (
  source: string,
  store: BlobStore,
  index: Index,
  tag: string | undefined,
  platform: Platform,
) =>
  Effect.gen(function* () {
    const candidates = tag === undefined
      ? index.manifests
      : index.manifests.filter((entry) => entry.annotations?.[REF_NAME] === tag)
    if (candidates.length === 0) {
      const tags = index.manifests.flatMap((entry) => entry.annotations?.[REF_NAME] ?? [])
      return yield* new ContainerImageNotFound({
        source,
        missing: tag === undefined
          ? "image in its index.json"
          : `image tagged '${tag}' (it has ${tags.length === 0 ? "no tags" : tags.join(", ")})`,
      })
    }
    const [only] = candidates
    const entry = only !== undefined && candidates.length === 1 ? only : yield* Either.mapLeft(
      selectPlatformEntry(candidates, platform),
      missingPlatform(source, platform),
    )
    return yield* store.document(entry, "manifest")
  })
