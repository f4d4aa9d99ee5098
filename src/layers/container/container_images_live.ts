/**
 * ContainerImagesLive: container images read from where their source says. `docker://` through
 * the Registry port (whose layer settles credentials and plain HTTP, as for `FROM NAME,oci=`);
 * `oci:DIR[:TAG]` from an OCI layout directory; `oci-archive:PATH` from a tar of one, its members
 * found by one pass over the tar headers and read in place by offset; `docker-archive:PATH` from
 * what `docker save` and `podman save` write. Paths are those of the build context, and a symlink
 * leading out of it is refused.
 */
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { bytesDigest } from "../../domain/blob_content.ts"
import {
  decodeJson,
  diffIdsOf,
  DOCKER_ARCHIVE_LAYER,
  DockerArchiveManifest,
  ImageConfig,
  layerCompression,
  memberName,
  onlyArchivedImage,
  platformMismatch,
  recordedConfig,
  SCHEMA1_MEDIA_TYPES,
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
  ContainerPlatformMismatch,
  ContainerPlatformMissing,
  ContainerSourceUnreadable,
} from "../../domain/errors/container.ts"
import {
  type Descriptor,
  Index,
  isIndex,
  Manifest,
  MAX_MANIFEST_BYTES,
  MediaType,
} from "../../domain/oci_manifest.ts"
import { formatPlatform, type Platform, selectPlatformEntry } from "../../domain/platform.ts"
import { Registry, type Repository } from "../../services/registry.ts"
import {
  ContainerImages,
  type ContainerImagesShape,
  type ContainerLayer,
  type ResolvedContainerImage,
} from "../../services/container_images.ts"
import { indexTarMembers, isRegularMember, type TarMember } from "./tar_members.ts"
import { lastChunkHeld, uncompressed, verifiedAtEnd } from "./layer_bytes.ts"

/** The sha256 digest of `stream`'s bytes, read to its end. */
const sha256Of = <E>(stream: Stream.Stream<Uint8Array, E>) =>
  Effect.map(
    Stream.runFold(stream, createHash("sha256"), (hash, chunk) => hash.update(chunk)),
    (hash) => `sha256:${hash.digest("hex")}`,
  )

const DIGEST = /^sha256:[a-f0-9]{64}$/
/** The annotation naming an image in an OCI layout's index.json. */
const REF_NAME = "org.opencontainers.image.ref.name"
/** Configs are small, like manifests; a larger one is not one. */
const MAX_DOCUMENT_BYTES = MAX_MANIFEST_BYTES

/** A document read whole: its bytes and their digest. */
interface Document {
  readonly bytes: Uint8Array
  readonly digest: string
}

/**
 * Where one source's blobs are: `document` reads a small one whole, verified against its
 * digest; `blob` streams one as stored, unverified (the reader hashes it).
 */
interface BlobStore {
  readonly document: (
    descriptor: Descriptor,
    kind: "manifest" | "config",
  ) => Effect.Effect<Document, ContainerImageError>
  readonly blob: (
    descriptor: { readonly digest: string; readonly size: number },
  ) => Stream.Stream<Uint8Array, ContainerImageError>
}

const make = Effect.gen(function* () {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const registry = yield* Registry

  const unreadable = (source: string, at: string) => (error: PlatformError) =>
    error._tag === "SystemError" && error.reason === "NotFound"
      ? new ContainerImageNotFound({ source, missing: `file ${at}` })
      : new ContainerSourceUnreadable({ source, path: at, reason: error.message })

  /** The real path of `relative` (in the build context), refused if a symlink leads out. */
  const confined = (source: string, contextDir: string, relative: string) =>
    Effect.gen(function* () {
      const context = yield* fs.realPath(contextDir).pipe(
        Effect.mapError(unreadable(source, contextDir)),
      )
      const real = yield* fs.realPath(path.join(context, relative)).pipe(
        Effect.mapError(unreadable(source, relative)),
      )
      if (real !== context && !real.startsWith(`${context}/`)) {
        return yield* new ContainerSourceUnreadable({
          source,
          path: relative,
          reason: "it leads out of the build context through a symlink",
        })
      }
      return real
    })

  /** The bytes of the file at `real`, refused past `limit`. */
  const readSmallFile = (source: string, shown: string, real: string, limit: number) =>
    Effect.gen(function* () {
      const info = yield* fs.stat(real).pipe(Effect.mapError(unreadable(source, shown)))
      if (info.type !== "File") {
        return yield* new ContainerSourceUnreadable({ source, path: shown, reason: "not a file" })
      }
      if (Number(info.size) > limit) {
        return yield* new ContainerJsonMalformed({
          source,
          document: shown,
          reason: `it has ${info.size} bytes, more than ${limit}`,
        })
      }
      return yield* fs.readFile(real).pipe(Effect.mapError(unreadable(source, shown)))
    })

  /** The bytes of `stream`, at most `limit` of them. */
  const collected = <E, E2>(
    stream: Stream.Stream<Uint8Array, E>,
    limit: number,
    tooLarge: () => E2,
  ): Effect.Effect<Uint8Array, E | E2> =>
    Stream.runFold(stream, [] as Array<Uint8Array>, (parts, chunk) => {
      parts.push(chunk.slice())
      return parts
    }).pipe(
      Effect.flatMap((parts) => {
        const size = parts.reduce((sum, part) => sum + part.length, 0)
        if (size > limit) return Effect.fail<E | E2>(tooLarge())
        const bytes = new Uint8Array(size)
        let offset = 0
        for (const part of parts) {
          bytes.set(part, offset)
          offset += part.length
        }
        return Effect.succeed(bytes)
      }),
    )

  const checkedDigest = (source: string, descriptor: Descriptor) =>
    DIGEST.test(descriptor.digest) ? Effect.void : Effect.fail(
      new ContainerJsonMalformed({
        source,
        document: "manifest",
        reason: `'${descriptor.digest}' is not a sha256 digest`,
      }),
    )

  /** A document read from a blob store of files: verified, refused past its size limit. */
  const verifiedDocument = (source: string, descriptor: Descriptor, bytes: Uint8Array) => {
    const digest = bytesDigest(bytes)
    return digest === descriptor.digest
      ? Effect.succeed({ bytes, digest })
      : Effect.fail(new ContainerBlobCorrupt({ source, digest: descriptor.digest, actual: digest }))
  }

  const registryStore = (source: string, repository: Repository): BlobStore => ({
    document: (descriptor, kind) =>
      Effect.gen(function* () {
        yield* checkedDigest(source, descriptor)
        if (kind === "manifest") {
          const fetched = yield* repository.fetchManifest(descriptor.digest)
          if (fetched.digest !== descriptor.digest) {
            return yield* new ContainerManifestTampered({
              source,
              expected: descriptor.digest,
              actual: fetched.digest,
            })
          }
          return { bytes: fetched.bytes, digest: fetched.digest }
        }
        const bytes = yield* collected(
          repository.openBlob(descriptor),
          MAX_DOCUMENT_BYTES,
          () =>
            new ContainerJsonMalformed({
              source,
              document: "config",
              reason: `it has more than ${MAX_DOCUMENT_BYTES} bytes`,
            }),
        )
        return yield* verifiedDocument(source, descriptor, bytes)
      }),
    blob: (descriptor) => repository.openBlob(descriptor),
  })

  const blobName = (digest: string) => `blobs/sha256/${digest.slice("sha256:".length)}`

  /** The blobs of an OCI layout directory (`real` its real path, `shown` as written). */
  const layoutStore = (source: string, contextDir: string, directory: string): BlobStore => ({
    document: (descriptor) =>
      Effect.gen(function* () {
        yield* checkedDigest(source, descriptor)
        const relative = path.join(directory, blobName(descriptor.digest))
        const real = yield* confined(source, contextDir, relative).pipe(
          Effect.catchTag("ContainerImageNotFound", () =>
            Effect.fail(
              new ContainerImageNotFound({ source, missing: `blob ${descriptor.digest}` }),
            )),
        )
        const bytes = yield* readSmallFile(source, relative, real, MAX_DOCUMENT_BYTES)
        return yield* verifiedDocument(source, descriptor, bytes)
      }),
    blob: (descriptor) =>
      Stream.unwrap(Effect.gen(function* () {
        const relative = path.join(directory, blobName(descriptor.digest))
        const real = yield* confined(source, contextDir, relative).pipe(
          Effect.catchTag("ContainerImageNotFound", () =>
            Effect.fail(
              new ContainerImageNotFound({ source, missing: `blob ${descriptor.digest}` }),
            )),
        )
        return fs.stream(real).pipe(Stream.mapError(unreadable(source, relative)))
      })),
  })

  /** An archive in the build context, its members indexed by one pass over its headers. */
  const openArchive = (source: string, contextDir: string, archive: string) =>
    Effect.gen(function* () {
      const real = yield* confined(source, contextDir, archive)
      const info = yield* fs.stat(real).pipe(Effect.mapError(unreadable(source, archive)))
      const members = yield* Effect.scoped(Effect.gen(function* () {
        const file = yield* fs.open(real, { flag: "r" })
        const readAt = (offset: number, length: number) =>
          Effect.gen(function* () {
            yield* file.seek(offset, "start")
            const bytes = new Uint8Array(length)
            let filled = 0
            while (filled < length) {
              const count = Number(yield* file.read(bytes.subarray(filled)))
              if (count === 0) break
              filled += count
            }
            return bytes.subarray(0, filled)
          })
        return yield* indexTarMembers(readAt, Number(info.size))
      })).pipe(
        Effect.mapError((error) =>
          typeof error === "string"
            ? new ContainerJsonMalformed({ source, document: "archive", reason: error })
            : unreadable(source, archive)(error)
        ),
      )
      /** The member `name`, following symlinks and hardlinks inside the archive. */
      const member = (name: string, hops = 0): Effect.Effect<TarMember, ContainerImageError> => {
        const found = members.get(memberName(path.normalize(name)))
        if (found === undefined || hops > 8) {
          return Effect.fail(new ContainerImageNotFound({ source, missing: `member ${name}` }))
        }
        if (found.type === "1") return member(found.linkName, hops + 1)
        if (found.type === "2") {
          return member(path.join(path.dirname(memberName(name)), found.linkName), hops + 1)
        }
        if (!isRegularMember(found)) {
          return Effect.fail(
            new ContainerSourceUnreadable({
              source,
              path: `${archive}:${name}`,
              reason: "not a file",
            }),
          )
        }
        return Effect.succeed(found)
      }
      const memberBytes = (found: TarMember) =>
        fs.stream(real, { offset: found.offset, bytesToRead: found.size }).pipe(
          Stream.mapError(unreadable(source, archive)),
        )
      const readMember = (name: string) =>
        Effect.gen(function* () {
          const found = yield* member(name)
          if (found.size > MAX_DOCUMENT_BYTES) {
            return yield* new ContainerJsonMalformed({
              source,
              document: name,
              reason: `it has ${found.size} bytes, more than ${MAX_DOCUMENT_BYTES}`,
            })
          }
          return yield* collected(memberBytes(found), MAX_DOCUMENT_BYTES, () =>
            new ContainerJsonMalformed({ source, document: name, reason: "it grew" }))
        })
      const openMember = (name: string) => Stream.unwrap(Effect.map(member(name), memberBytes))
      return { member, readMember, openMember }
    })

  const archiveStore = (
    source: string,
    archive: Effect.Effect<
      {
        readonly readMember: (name: string) => Effect.Effect<Uint8Array, ContainerImageError>
        readonly openMember: (name: string) => Stream.Stream<Uint8Array, ContainerImageError>
      },
      ContainerImageError
    >,
  ): BlobStore => ({
    document: (descriptor) =>
      Effect.gen(function* () {
        yield* checkedDigest(source, descriptor)
        const opened = yield* archive
        const bytes = yield* opened.readMember(blobName(descriptor.digest)).pipe(
          Effect.catchTag("ContainerImageNotFound", () =>
            Effect.fail(
              new ContainerImageNotFound({ source, missing: `blob ${descriptor.digest}` }),
            )),
        )
        return yield* verifiedDocument(source, descriptor, bytes)
      }),
    blob: (descriptor) =>
      Stream.unwrap(
        Effect.map(archive, (opened) => opened.openMember(blobName(descriptor.digest))),
      ),
  })

  const parsed = <A, I>(source: string, document: string, schema: Schema.Schema<A, I>) =>
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

  const missingPlatform = (source: string, platform: Platform) => (reason: string) =>
    new ContainerPlatformMissing({ source, platform: formatPlatform(platform), reason })

  /** The image `top` stands for on `platform`: through an index to its entry, then its config. */
  const resolveOci = (
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
  const configOf = (source: string, bytes: Uint8Array, platform: Platform) =>
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
  const pickFromLayout = (
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

  const openOciSource = (
    source: string,
    contextDir: string,
    origin: ContainerSource,
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
          const store = layoutStore(source, contextDir, origin.directory)
          const top = (platform: Platform) =>
            Effect.gen(function* () {
              const relative = path.join(origin.directory, "index.json")
              const real = yield* confined(source, contextDir, relative)
              const bytes = yield* readSmallFile(source, relative, real, MAX_DOCUMENT_BYTES)
              const index = yield* parsed(source, "index.json", Index)(bytes)
              return yield* pickFromLayout(source, store, index, origin.tag, platform)
            })
          return { store, top }
        }
        case "OciArchive": {
          const archive = yield* Effect.cached(openArchive(source, contextDir, origin.path))
          const store = archiveStore(source, archive)
          const top = (platform: Platform) =>
            Effect.gen(function* () {
              const opened = yield* archive
              const bytes = yield* opened.readMember("index.json")
              const index = yield* parsed(source, "index.json", Index)(bytes)
              return yield* pickFromLayout(source, store, index, undefined, platform)
            })
          return { store, top }
        }
        case "DockerArchive":
          return yield* Effect.die("a docker archive has no OCI blob store")
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
      const archive = yield* openArchive(source, contextDir, archivePath)
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
    archive: Effect.Effect.Success<ReturnType<typeof openArchive>>,
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
        const archive = yield* openArchive(source, image.contextDir, origin.path)
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
