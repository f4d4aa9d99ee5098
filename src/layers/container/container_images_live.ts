/**
 * ContainerImagesLive: container images read from where their source says. `docker://` through
 * the Registry port (whose layer settles credentials and plain HTTP, as for `FROM NAME,oci=`);
 * `oci:DIR[:TAG]` from an OCI layout directory; `oci-archive:PATH` from a tar of one, read in
 * place; `docker-archive:PATH` from what `docker save` and `podman save` write. Layers are
 * streamed uncompressed, checked against their digests before their last chunk.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { bytesDigest } from "../../domain/blob_content.ts"
import {
  DOCKER_ARCHIVE_LAYER,
  DockerArchiveManifest,
  layerCompression,
  onlyArchivedImage,
} from "../../domain/container_image.ts"
import { type ContainerSource, formatContainerSource } from "../../domain/container_source.ts"
import {
  ContainerBlobCorrupt,
  type ContainerImageError,
  ContainerImageNotFound,
  ContainerJsonMalformed,
  ContainerLayerUndecodable,
  ContainerManifestTampered,
  ContainerMediaTypeUnsupported,
} from "../../domain/errors/container.ts"
import { Index } from "../../domain/oci_manifest.ts"
import type { Platform } from "../../domain/platform.ts"
import {
  ContainerImages,
  type ContainerImagesShape,
  type ContainerLayer,
  type ResolvedContainerImage,
} from "../../services/container_images.ts"
import { Registry } from "../../services/registry.ts"
import {
  type BlobStore,
  type Document,
  MAX_DOCUMENT_BYTES,
  registryStore,
  sha256Of,
} from "./blob_store.ts"
import { contextFiles, type OpenedArchive } from "./context_files.ts"
import { lastChunkHeld, uncompressed, verifiedAtEnd } from "./layer_bytes.ts"
import { configOf, parsed, pickFromLayout, resolveOci } from "./oci_image.ts"

const make = Effect.gen(function* () {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const registry = yield* Registry

  const files = contextFiles(fs, path)

  /** An OCI source's blob store, and how to read its top document for a platform. */
  const openOciSource = (
    source: string,
    contextDir: string,
    origin: Exclude<ContainerSource, { readonly _tag: "DockerArchive" }>,
  ): Effect.Effect<
    {
      readonly store: BlobStore
      readonly top: (platform: Platform) => Effect.Effect<Document, ContainerImageError>
    },
    ContainerImageError
  > =>
    Effect.gen(function* () {
      switch (origin._tag) {
        case "Registry": {
          const repository = yield* registry.repository(origin.reference, "pull")
          const store = registryStore(source, repository)
          const pinned = origin.reference.digest
          const top = () =>
            Effect.gen(function* () {
              const fetched = yield* repository.fetchManifest(
                pinned ?? origin.reference.tag ?? "latest",
              )
              if (pinned !== undefined && fetched.digest !== pinned) {
                return yield* new ContainerManifestTampered({
                  source,
                  expected: pinned,
                  actual: fetched.digest,
                })
              }
              return { bytes: fetched.bytes, digest: fetched.digest }
            })
          return { store, top }
        }
        case "OciLayout": {
          const store = files.layoutStore(source, contextDir, origin.directory)
          const top = (platform: Platform) =>
            Effect.gen(function* () {
              const relative = path.join(origin.directory, "index.json")
              const real = yield* files.confined(source, contextDir, relative)
              const bytes = yield* files.readSmallFile(source, relative, real, MAX_DOCUMENT_BYTES)
              const index = yield* parsed(source, "index.json", Index)(bytes)
              return yield* pickFromLayout(source, store, index, origin.tag, platform)
            })
          return { store, top }
        }
        case "OciArchive": {
          const archive = yield* Effect.cached(files.openArchive(source, contextDir, origin.path))
          const store = files.archiveStore(source, archive)
          const top = (platform: Platform) =>
            Effect.gen(function* () {
              const opened = yield* archive
              const bytes = yield* opened.readMember("index.json")
              const index = yield* parsed(source, "index.json", Index)(bytes)
              return yield* pickFromLayout(source, store, index, undefined, platform)
            })
          return { store, top }
        }
      }
    })

  /**
   * A `docker save` archive's image. It has no manifest of its own: its digest (the step's key)
   * is that of its config, as docker's image ID is. Its layers have no blob digests either; each
   * is checked against its diff id, on the uncompressed bytes.
   */
  const resolveDockerArchive = (
    source: string,
    contextDir: string,
    archivePath: string,
    platform: Platform,
  ) =>
    Effect.gen(function* () {
      const archive = yield* files.openArchive(source, contextDir, archivePath)
      const entry = yield* dockerArchiveEntry(source, archive)
      const bytes = yield* archive.readMember(entry.Config)
      const configDigest = bytesDigest(bytes)
      const image = yield* configOf(source, bytes, platform)
      if (image.diffIds.length !== entry.Layers.length) {
        return yield* new ContainerJsonMalformed({
          source,
          document: "manifest.json",
          reason: `it lists ${entry.Layers.length} layers, the config ${image.diffIds.length}`,
        })
      }
      const layers = yield* Effect.forEach(entry.Layers, (layer, i) =>
        Effect.map(archive.member(layer), (found) => ({
          digest: image.diffIds[i] ?? "",
          size: found.size,
          mediaType: DOCKER_ARCHIVE_LAYER,
        })))
      return {
        manifestDigest: configDigest,
        configDigest,
        config: image.config,
        diffIds: image.diffIds,
        layers,
      }
    })

  const dockerArchiveEntry = (
    source: string,
    archive: OpenedArchive,
  ) =>
    Effect.gen(function* () {
      const manifest = yield* archive.readMember("manifest.json").pipe(
        Effect.flatMap(parsed(source, "manifest.json", DockerArchiveManifest)),
      )
      return yield* Either.mapLeft(
        onlyArchivedImage(manifest),
        (reason) => new ContainerJsonMalformed({ source, document: "manifest.json", reason }),
      )
    })

  const resolve: ContainerImagesShape["resolve"] = Effect.fn("ContainerImages.resolve")(
    function* (origin, platform, contextDir) {
      const source = formatContainerSource(origin)
      const found = origin._tag === "DockerArchive"
        ? yield* resolveDockerArchive(source, contextDir, origin.path, platform)
        : yield* Effect.gen(function* () {
          const opened = yield* openOciSource(source, contextDir, origin)
          const top = yield* opened.top(platform)
          return yield* resolveOci(source, opened.store, top, platform)
        })
      return { source, origin, contextDir, platform, ...found } satisfies ResolvedContainerImage
    },
  )

  /** The layer's bytes as stored, and the digest they are checked against (raw or uncompressed). */
  const storedLayer = (image: ResolvedContainerImage, layer: ContainerLayer) =>
    Effect.gen(function* () {
      const source = image.source
      const origin = image.origin
      if (origin._tag === "DockerArchive") {
        const archive = yield* files.openArchive(source, image.contextDir, origin.path)
        const entry = yield* dockerArchiveEntry(source, archive)
        const position = image.layers.indexOf(layer)
        const name = entry.Layers[
          position === -1 ? image.layers.findIndex((l) => l.digest === layer.digest) : position
        ]
        if (name === undefined) {
          return yield* new ContainerImageNotFound({ source, missing: `layer ${layer.digest}` })
        }
        return { bytes: archive.openMember(name), checked: "uncompressed" as const }
      }
      const opened = yield* openOciSource(source, image.contextDir, origin)
      return { bytes: opened.store.blob(layer), checked: "stored" as const }
    })

  const openLayer: ContainerImagesShape["openLayer"] = (image, layer) =>
    Stream.unwrap(Effect.gen(function* () {
      const source = image.source
      const corrupt = (actual: string) =>
        new ContainerBlobCorrupt({ source, digest: layer.digest, actual })
      const declared = layerCompression(layer.mediaType)
      if (declared === undefined) {
        return yield* new ContainerMediaTypeUnsupported({
          source,
          what: `layer ${layer.digest}`,
          mediaType: layer.mediaType,
          hint: "a layer must be a tar, uncompressed or compressed with gzip or zstd",
        })
      }
      const undecodable = (reason: string) =>
        new ContainerLayerUndecodable({ source, digest: layer.digest, reason })
      const stored = yield* storedLayer(image, layer)
      return stored.checked === "stored"
        ? stored.bytes.pipe(
          verifiedAtEnd(layer.digest, corrupt),
          uncompressed(declared, undecodable),
          lastChunkHeld,
          // A corrupt blob mostly fails to decompress before its end, where its digest is
          // checked: the blob is hashed whole to say which it is.
          Stream.catchTag("ContainerLayerUndecodable", (error) =>
            Stream.fromEffect(
              Effect.flatMap(
                sha256Of(stored.bytes),
                (actual): Effect.Effect<Uint8Array, ContainerImageError> =>
                  Effect.fail(actual === layer.digest ? error : corrupt(actual)),
              ),
            )),
        )
        : stored.bytes.pipe(
          uncompressed(declared, undecodable),
          verifiedAtEnd(layer.digest, corrupt),
        )
    })).pipe(Stream.withSpan("ContainerImages.openLayer"))

  return { resolve, openLayer } satisfies ContainerImagesShape
})

export const ContainerImagesLive: Layer.Layer<
  ContainerImages,
  never,
  Registry | FileSystem.FileSystem | Path.Path
> = Layer.effect(ContainerImages, make)
