/**
 * `image push`: a stored image to a registry, as a KubeVirt containerDisk (the default) or as an
 * OCI artifact. Blobs the registry has are skipped (HEAD); the others are uploaded in chunks, each
 * read from the file as it is sent and sent again (from where the registry says it got to) when
 * the connection drops; the manifest goes last, so a failed push leaves no tag behind.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpBody from "@effect/platform/HttpBody"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import * as Duration from "effect/Duration"
import {
  type Blob,
  containerDiskConfig,
  containerDiskManifest,
  diskArtifactManifest,
  EMPTY_CONFIG,
  jsonBytes,
  MediaType,
  type Provenance,
} from "../../domain/oci_manifest.ts"
import { type OciReference, pinned } from "../../domain/oci_reference.ts"
import {
  CompressionFailed,
  type RegistryError,
  RegistryRefused,
  type RegistryUnreachable,
} from "../../domain/registry_errors.ts"
import { StoreIoError } from "../../domain/errors/store.ts"
import type { StoredImage } from "../../services/image_store.ts"
import { Reporter } from "../../services/reporter.ts"
import { runTool } from "../host_process.ts"
import {
  type BlobSource,
  bytesBlob,
  bytesDigest,
  containerDiskLayer,
  fileBlob,
} from "./blob_source.ts"
import {
  openRegistry,
  type RegistryOptions,
  type RegistryRequirements,
  type RegistrySession,
} from "./registry_client.ts"

export type PushFormat = "containerdisk" | "artifact"

/** The notes that keep each layout's disk digest: the same image gives the same layer. */
const CONTAINER_DISK_NOTE = "containerdisk-layer"
const ARTIFACT_NOTE = "artifact-layer-zstd"

/** The smallest chunk when the registry asks for chunks (`OCI-Chunk-Min-Length`). */
const CHUNK = 8 * 1024 * 1024
/** The most a registry's minimum chunk length may make a chunk. */
const MAX_CHUNK = 256 * 1024 * 1024
/** Attempts of one PATCH whose connection drops. */
const PATCH_ATTEMPTS = 4

/** Where the registry says an upload has got to: the first byte it lacks. */
const uploadedUpTo = (range: string | undefined): number | undefined => {
  const match = /^(?:bytes=)?0-(\d+)$/.exec(range?.trim() ?? "")
  return match ? Number(match[1]) + 1 : undefined
}

const readFailed = (image: string, path: string) => (cause: unknown) =>
  new StoreIoError({ operation: "read", image, path, cause })

export interface UploadedBlob {
  readonly digest: string
  /** False when the registry had it already. */
  readonly sent: boolean
}

/**
 * Upload `blob`, unless the registry has it under `known` (its digest, when known before). The
 * bytes stream from the blob as they are sent, hashed on the way: in one PATCH, or in chunks of
 * the size the registry asks for. A dropped PATCH resumes from where the registry says it got.
 */
export const uploadBlob = (
  session: RegistrySession,
  blob: BlobSource,
  known: string | undefined,
  label: string | undefined,
  origin: { readonly image: string; readonly path: string },
): Effect.Effect<
  UploadedBlob,
  RegistryError | StoreIoError,
  Reporter | RegistryRequirements
> =>
  Effect.gen(function* () {
    const reporter = yield* Reporter
    const registry = session.reference.registry
    if (known !== undefined) {
      const present = yield* session.send({
        method: "HEAD",
        path: `blobs/${known}`,
        operation: `check for blob ${known}`,
      })
      if (present.status === 200) return { digest: known, sent: false }
      if (present.status !== 404) {
        return yield* session.failure(present, `check for blob ${known}`)
      }
    }

    const operation = `upload ${known === undefined ? "a blob" : `blob ${known}`}`
    const started = yield* session.send({
      method: "POST",
      path: "blobs/uploads/",
      operation,
      repeatable: true,
    })
    if (started.status !== 202) return yield* session.failure(started, operation)
    let location = started.headers["location"]
    if (location === undefined) {
      return yield* new RegistryRefused({ registry, operation, detail: "no upload location" })
    }
    location = new URL(location, session.url("blobs/uploads/")).href
    const minimum = Number(started.headers["oci-chunk-min-length"] ?? 0)
    const chunked = Number.isFinite(minimum) && minimum > 0
    const chunk = chunked ? Math.min(MAX_CHUNK, Math.max(CHUNK, minimum)) : blob.size
    const progress = label === undefined
      ? undefined
      : yield* reporter.progress(label, blob.size, { phase: "upload" })

    // Every byte is hashed once, in order, however often a resumed PATCH sends it again.
    const hash = createHash("sha256")
    let hashed = 0
    const counted = (from: number, to: number) =>
      Stream.suspend(() => {
        let position = from
        return blob.read(from, to).pipe(
          Stream.tap((bytes) =>
            Effect.suspend(() => {
              const start = position
              position += bytes.length
              const fresh = start + bytes.length - Math.max(start, hashed)
              if (fresh <= 0) return Effect.void
              hash.update(bytes.subarray(bytes.length - fresh))
              hashed += fresh
              return progress === undefined ? Effect.void : progress.advance(fresh)
            })
          ),
        )
      })

    let offset = 0
    while (offset < blob.size) {
      const from = offset
      const to = Math.min(offset + chunk, blob.size)
      const target: string = location
      const sent: HttpClientResponse.HttpClientResponse = yield* session.send({
        method: "PATCH",
        path: target,
        headers: {
          "content-type": "application/octet-stream",
          ...(chunked ? { "content-range": `${from}-${to - 1}` } : {}),
        },
        body: () =>
          HttpBody.stream(
            counted(from, to).pipe(Stream.mapError(readFailed(origin.image, origin.path))),
            "application/octet-stream",
          ),
        operation,
        repeatable: false,
      }).pipe(
        Effect.flatMap((response) =>
          response.status === 202 ? Effect.succeed(response) : session.failure(response, operation)
        ),
        // A dropped connection: ask how far the registry got, and go on from there.
        Effect.catchTag("RegistryUnreachable", (error) => resumeAt(session, target, error)),
        Effect.retry({
          schedule: Schedule.exponential(Duration.millis(250)),
          times: PATCH_ATTEMPTS - 1,
          while: (error) => error._tag === "RegistryUnreachable",
        }),
      )
      const next = sent.headers["location"]
      if (next !== undefined) location = new URL(next, target).href
      offset = Math.max(from, Math.min(to, uploadedUpTo(sent.headers["range"]) ?? to))
      if (offset === from) {
        return yield* new RegistryRefused({
          registry,
          operation,
          detail: "the upload made no progress",
        })
      }
    }
    if (hashed !== blob.size) {
      return yield* readFailed(origin.image, origin.path)(
        new Error("the file changed while it was read"),
      )
    }
    const digest = `sha256:${hash.digest("hex")}`
    const done = new URL(location)
    done.searchParams.set("digest", digest)
    const finished = yield* session.send({
      method: "PUT",
      path: done.href,
      operation: `upload blob ${digest}`,
      repeatable: false,
    })
    if (progress !== undefined) yield* progress.done
    if (finished.status !== 201) return yield* session.failure(finished, `upload blob ${digest}`)
    return { digest, sent: true }
  }).pipe(Effect.scoped)

/** After a dropped PATCH: the upload's status, as the response to carry on from. */
const resumeAt = (session: RegistrySession, location: string, error: RegistryUnreachable) =>
  Effect.gen(function* () {
    const status = yield* session.send({
      method: "GET",
      path: location,
      operation: "resume the upload",
    })
    if (status.status !== 204 || uploadedUpTo(status.headers["range"]) === undefined) {
      return yield* Effect.fail(error)
    }
    return status
  })

/** Put `manifest` at the reference's tag; its digest. */
const putManifest = (session: RegistrySession, tag: string, manifest: Uint8Array) =>
  Effect.gen(function* () {
    const operation = `store the manifest of ${session.describe}`
    const response = yield* session.send({
      method: "PUT",
      path: `manifests/${tag}`,
      headers: { "content-type": MediaType.ociManifest },
      body: () => HttpBody.uint8Array(manifest, MediaType.ociManifest),
      operation,
      repeatable: true,
    })
    if (response.status !== 201) return yield* session.failure(response, operation)
    return bytesDigest(manifest)
  }).pipe(Effect.scoped)

/** A small JSON blob (a config). */
export const uploadBytes = (session: RegistrySession, bytes: Uint8Array) => {
  const digest = bytesDigest(bytes)
  return Effect.map(
    uploadBlob(session, bytesBlob(bytes), digest, undefined, { image: "config", path: digest }),
    (): Blob => ({ digest, size: bytes.length }),
  )
}

/**
 * Upload the disk's blob: skipped when the registry has it under the digest noted for it the
 * last time (`note`), else hashed as it is sent, and the digest noted for the next time.
 */
const uploadDisk = (
  session: RegistrySession,
  blob: BlobSource,
  name: string,
  path: string,
  remembered: {
    readonly digest: string | undefined
    readonly note: (digest: string) => Effect.Effect<void>
  },
) =>
  Effect.gen(function* () {
    const reporter = yield* Reporter
    const uploaded = yield* uploadBlob(session, blob, remembered.digest, `Pushing '${name}'`, {
      image: name,
      path,
    })
    if (!uploaded.sent) {
      yield* reporter.info(`The registry has the disk already (${uploaded.digest})`)
    }
    yield* remembered.note(uploaded.digest)
    return { digest: uploaded.digest, size: blob.size }
  })

/** `file` compressed with zstd into `into` (the host's zstd: multi-threaded and streaming). */
const compress = (image: string, file: string, into: string) =>
  Effect.gen(function* () {
    const result = yield* runTool(["zstd", "-q", "-3", "-T0", "-f", "-o", into, "--", file]).pipe(
      Effect.catchTag("ToolMissing", () =>
        Effect.succeed({ code: 127, stderr: "zstd is not installed" })),
    )
    if (result.code !== 0) {
      return yield* new CompressionFailed({
        image,
        detail: result.stderr.trim().split("\n").at(-1) ?? `exit status ${result.code}`,
      })
    }
  })

/** Push `image` to `reference` (a tag); the manifest's digest. */
/** Facts about an image kept between pushes (the store's `note`/`noted`). */
export interface PushNotes {
  readonly get: (key: string) => Effect.Effect<string | undefined>
  readonly set: (key: string, value: string) => Effect.Effect<void>
}

export const pushImage = (
  image: StoredImage,
  reference: OciReference & { readonly tag: string },
  format: PushFormat,
  provenance: Provenance,
  options: RegistryOptions,
  notes: PushNotes,
) =>
  Effect.scoped(Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const reporter = yield* Reporter
    const session = yield* openRegistry(reference, "push", options)
    const failedToRead = readFailed(image.name, image.path)
    // One open file: the image published again meanwhile does not mix two versions.
    const file = yield* fs.open(image.path, { flag: "r" }).pipe(Effect.mapError(failedToRead))
    const size = Number((yield* file.stat.pipe(Effect.mapError(failedToRead))).size)
    yield* reporter.info(
      `Pushing '${image.name}' to ${session.describe} as a ${
        format === "artifact" ? "disk artifact" : "containerDisk"
      }`,
    )
    let manifest: unknown
    if (format === "containerdisk") {
      const layer = yield* uploadDisk(
        session,
        containerDiskLayer(file, size),
        image.name,
        image.path,
        {
          digest: yield* notes.get(CONTAINER_DISK_NOTE),
          note: (digest) => notes.set(CONTAINER_DISK_NOTE, digest),
        },
      )
      const config = yield* uploadBytes(
        session,
        jsonBytes(containerDiskConfig(layer.digest, provenance)),
      )
      manifest = containerDiskManifest(config, layer, provenance)
    } else {
      const directory = yield* fs.makeTempDirectoryScoped({ prefix: "transient-push-" }).pipe(
        Effect.mapError(failedToRead),
      )
      const compressed = `${directory}/disk.qcow2.zst`
      yield* reporter.info(`Compressing '${image.name}' with zstd`)
      yield* compress(image.name, image.path, compressed)
      const packed = yield* fs.open(compressed, { flag: "r" }).pipe(Effect.mapError(failedToRead))
      const packedSize = Number((yield* packed.stat.pipe(Effect.mapError(failedToRead))).size)
      const layer = yield* uploadDisk(
        session,
        fileBlob(packed, packedSize),
        image.name,
        compressed,
        {
          digest: yield* notes.get(ARTIFACT_NOTE),
          note: (digest) => notes.set(ARTIFACT_NOTE, digest),
        },
      )
      const empty = yield* uploadBytes(session, EMPTY_CONFIG)
      const title = `${image.name.replace(/[^A-Za-z0-9._-]+/g, "_")}.qcow2.zst`
      manifest = diskArtifactManifest(empty, layer, title, provenance)
    }
    const digest = yield* putManifest(session, reference.tag, jsonBytes(manifest))
    return { digest, pinned: pinned(reference, digest) }
  }))

export type PushRequirements = RegistryRequirements | FileSystem.FileSystem | Reporter
