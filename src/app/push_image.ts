/**
 * `image push`: a stored image to a registry, as a KubeVirt containerDisk (the default) or as an
 * OCI artifact. Blobs the registry has are skipped; the disk's digest is noted in the store, so a
 * second push of the same image asks the registry about it before reading it at all; the manifest
 * goes last, so a failed push leaves no tag behind.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import {
  type BlobContent,
  bytesContent,
  bytesDigest,
  containerDiskContent,
  contentSize,
  fileContent,
} from "../domain/blob_content.ts"
import {
  type BlobUnreadable,
  CompressionFailed,
  InvalidOciReference,
} from "../domain/errors/registry.ts"
import {
  type Blob,
  containerDiskConfig,
  containerDiskManifest,
  diskArtifactManifest,
  EMPTY_CONFIG,
  jsonBytes,
  MediaType,
  type Provenance,
} from "../domain/oci_manifest.ts"
import { parseOciReference, pinned } from "../domain/oci_reference.ts"
import { StoreIoError } from "../domain/errors/store.ts"
import { DiskImages } from "../services/disk_images.ts"
import { ImageStore, type StoredImage } from "../services/image_store.ts"
import { Registry, type Repository } from "../services/registry.ts"
import { Reporter } from "../services/reporter.ts"
import { VERSION } from "../version.ts"
import { storedImageNamed } from "./stored_image.ts"

export type PushFormat = "containerdisk" | "artifact"

export interface PushRequest {
  /** The stored image's name. */
  readonly name: string
  /** Where to push it: `REGISTRY/REPOSITORY[:TAG]`. */
  readonly reference: string
  readonly format: PushFormat
}

export interface PushResult {
  /** The manifest's digest. */
  readonly digest: string
  /** The reference pinned at that digest. */
  readonly pinned: string
}

/** The notes that keep each layout's disk digest: the same image gives the same layer. */
const CONTAINER_DISK_NOTE = "containerdisk-layer"
const ARTIFACT_NOTE = "artifact-layer-zstd"

/**
 * Upload `content` unless the registry has it under `known` (its digest when known before);
 * its digest and whether it was sent. `label` shows an upload progress.
 */
export const uploadUnlessPresent = Effect.fn("pushImage.upload")(function* (
  repository: Repository,
  content: BlobContent<FileSystem.File>,
  known: string | undefined,
  label: string | undefined,
) {
  if (known !== undefined && (yield* repository.blobExists(known))) {
    return { digest: known, sent: false }
  }
  const reporter = yield* Reporter
  if (label === undefined) {
    return { digest: yield* repository.uploadBlob(content), sent: true }
  }
  const progress = yield* reporter.progress(label, contentSize(content), { phase: "upload" })
  const digest = yield* repository.uploadBlob(content, { onProgress: progress.advance }).pipe(
    Effect.ensuring(progress.done),
  )
  return { digest, sent: true }
})

/** A small JSON blob (a config), uploaded unless the registry has it. */
export const uploadBytes = (repository: Repository, bytes: Uint8Array) =>
  Effect.map(
    uploadUnlessPresent(repository, bytesContent(bytes), bytesDigest(bytes), undefined),
    (uploaded): Blob => ({ digest: uploaded.digest, size: bytes.length }),
  )

/** Where the image came from, for its manifest's annotations. */
const provenanceOf = (image: StoredImage) =>
  Effect.gen(function* () {
    const store = yield* ImageStore
    const fs = yield* FileSystem.FileSystem
    const recorded = yield* store.provenance(image)
    const modified = yield* fs.stat(image.path).pipe(
      Effect.map((info) => Option.getOrUndefined(info.mtime)),
      Effect.orElseSucceed(() => undefined),
    )
    return {
      name: image.name,
      created: recorded?.builtAt ?? (modified ?? new Date()).toISOString(),
      version: VERSION,
      imagefileDigest: recorded?.imagefileDigest,
    } satisfies Provenance
  })

/**
 * Upload the disk's blob: skipped when the registry has it under the digest noted for it the
 * last time (`note`), else hashed as it is sent, and the digest noted for the next time.
 */
const uploadDisk = (
  repository: Repository,
  image: StoredImage,
  content: BlobContent<FileSystem.File>,
  note: string,
) =>
  Effect.gen(function* () {
    const store = yield* ImageStore
    const reporter = yield* Reporter
    const uploaded = yield* uploadUnlessPresent(
      repository,
      content,
      yield* store.noted(image, note),
      `Pushing '${image.name}'`,
    )
    if (!uploaded.sent) {
      yield* reporter.info(`The registry has the disk already (${uploaded.digest})`)
    }
    yield* store.note(image, note, uploaded.digest)
    return { digest: uploaded.digest, size: contentSize(content) }
  })

/** Push the stored image `request.name` to `request.reference` (a tag). */
export const pushImage = Effect.fn("pushImage")(function* (request: PushRequest) {
  const { name, reference, format } = request
  const target = yield* parseOciReference(reference).pipe(
    Either.flatMap((parsed) =>
      parsed.digest !== undefined
        ? Either.left("push to a tag, not a digest")
        : Either.right({ ...parsed, tag: parsed.tag ?? "latest" })
    ),
    Either.mapLeft((reason) => new InvalidOciReference({ reference, reason })),
  )
  const image = yield* storedImageNamed(name, "push")
  const provenance = yield* provenanceOf(image)
  const fs = yield* FileSystem.FileSystem
  const reporter = yield* Reporter
  const registry = yield* Registry
  const repository = yield* registry.repository(target, "push")
  const failedToRead = (path: string) => (cause: unknown) =>
    new StoreIoError({ operation: "read", image: image.name, path, cause })
  const unreadable = (path: string) => (error: BlobUnreadable) =>
    Effect.fail(failedToRead(path)(error.cause))
  // One open file: the image published again meanwhile does not mix two versions.
  const file = yield* fs.open(image.path, { flag: "r" }).pipe(
    Effect.mapError(failedToRead(image.path)),
  )
  const size = Number((yield* file.stat.pipe(Effect.mapError(failedToRead(image.path)))).size)
  yield* reporter.info(
    `Pushing '${image.name}' to ${repository.describe} as a ${
      format === "artifact" ? "disk artifact" : "containerDisk"
    }`,
  )
  let manifest: unknown
  if (format === "containerdisk") {
    const layer = yield* uploadDisk(
      repository,
      image,
      containerDiskContent(file, size),
      CONTAINER_DISK_NOTE,
    ).pipe(Effect.catchTag("BlobUnreadable", unreadable(image.path)))
    const config = yield* uploadBytes(
      repository,
      jsonBytes(containerDiskConfig(layer.digest, provenance)),
    ).pipe(Effect.catchTag("BlobUnreadable", unreadable(image.path)))
    manifest = containerDiskManifest(config, layer, provenance)
  } else {
    const directory = yield* fs.makeTempDirectoryScoped({ prefix: "transient-push-" }).pipe(
      Effect.mapError(failedToRead(image.path)),
    )
    const compressed = `${directory}/disk.qcow2.zst`
    yield* reporter.info(`Compressing '${image.name}' with zstd`)
    yield* Effect.flatMap(
      DiskImages,
      (disks) => disks.compress({ from: image.path, to: compressed }),
    )
      .pipe(
        Effect.mapError((error) =>
          new CompressionFailed({ image: image.name, detail: error.reason })
        ),
      )
    const packed = yield* fs.open(compressed, { flag: "r" }).pipe(
      Effect.mapError(failedToRead(image.path)),
    )
    const packedSize = Number(
      (yield* packed.stat.pipe(Effect.mapError(failedToRead(image.path)))).size,
    )
    const layer = yield* uploadDisk(
      repository,
      image,
      fileContent(packed, packedSize),
      ARTIFACT_NOTE,
    ).pipe(Effect.catchTag("BlobUnreadable", unreadable(compressed)))
    const empty = yield* uploadBytes(repository, EMPTY_CONFIG).pipe(
      Effect.catchTag("BlobUnreadable", unreadable(image.path)),
    )
    const title = `${image.name.replace(/[^A-Za-z0-9._-]+/g, "_")}.qcow2.zst`
    manifest = diskArtifactManifest(empty, layer, title, provenance)
  }
  const digest = yield* repository.putManifest(
    target.tag,
    jsonBytes(manifest),
    MediaType.ociManifest,
  )
  return { digest, pinned: pinned(target, digest) } satisfies PushResult
}, Effect.scoped)

export type PushRequirements =
  | ImageStore
  | Registry
  | Reporter
  | FileSystem.FileSystem
  | DiskImages
