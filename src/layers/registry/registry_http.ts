/**
 * RegistryHttp: the Registry port over the OCI distribution protocol, written once — manifests
 * (GET, PUT), blobs (HEAD, GET resumed with `Range`, uploads by POST, PATCH and PUT) — on the
 * authenticated session of registry_client.ts. Its options (plain HTTP, insecure registries,
 * where credentials are) come from `Config` when the layer is built.
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as HttpBody from "@effect/platform/HttpBody"
import type * as HttpClient from "@effect/platform/HttpClient"
import type { ResponseError } from "@effect/platform/HttpClientError"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { bytesDigest } from "../../domain/blob_content.ts"
import {
  BlobUnreadable,
  type RegistryError,
  RegistryNotFound,
  RegistryRefused,
  RegistryStalled,
  RegistryTransferInterrupted,
  type RegistryUnreachable,
} from "../../domain/errors/registry.ts"
import { NothingArrived } from "../../domain/errors/network.ts"
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from "../../domain/oci_manifest.ts"
import type { OciReference } from "../../domain/oci_reference.ts"
import {
  chunkRange,
  nextOffset,
  oversizedManifest,
  resumeRange,
  uploadChunk,
  uploadedDigest,
  uploadedUpTo,
} from "../../domain/registry_protocol.ts"
import {
  type BlobDescriptor,
  type FetchedManifest,
  Registry,
  type RegistryAccess,
  type RegistryShape,
  type Repository,
  type UploadContent,
  type UploadOptions,
} from "../../services/registry.ts"
import { boundedBody, emptyAsNothing } from "../network_reads.ts"
import { contentReader } from "./blob_source.ts"
import {
  openRegistry,
  registryConfig,
  type RegistryOptions,
  type RegistryRequirements,
  type RegistrySession,
} from "./registry_client.ts"

/** Times a blob download is resumed after its connection drops. */
const RESUMES = 3
/** Attempts of one PATCH whose connection drops. */
const PATCH_ATTEMPTS = 4

/**
 * The body of a manifest answer, refused past MAX_MANIFEST_BYTES whether announced or not, and
 * when its bytes stop coming for the session's timeout.
 */
const manifestBody = (
  response: HttpClientResponse.HttpClientResponse,
  session: RegistrySession,
  operation: string,
) =>
  Effect.gen(function* () {
    const registry = session.reference.registry
    const tooLarge = (size?: number) =>
      new RegistryRefused({
        registry,
        operation,
        detail: oversizedManifest(MAX_MANIFEST_BYTES, size),
      })
    const announced = Number(response.headers["content-length"] ?? 0)
    if (announced > MAX_MANIFEST_BYTES) return yield* tooLarge(announced)
    return yield* boundedBody(emptyAsNothing(response.stream), {
      limit: MAX_MANIFEST_BYTES,
      timeout: session.timeout,
      tooLarge: () => tooLarge(),
      stalled: (cause) =>
        new RegistryStalled({ registry, operation, url: response.request.url, cause }),
    }).pipe(
      Effect.catchTag("ResponseError", (error) =>
        new RegistryRefused({ registry, operation, detail: String(error.cause ?? error.message) })),
    )
  })

/** After a dropped PATCH: the upload's status, as the response to carry on from. */
const resumeAt = (
  session: RegistrySession,
  location: string,
  error: RegistryUnreachable | RegistryStalled,
) =>
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

/** Open an upload: where its bytes go, and the chunk size the registry asks for, if any. */
const startUpload = (session: RegistrySession, operation: string) =>
  Effect.gen(function* () {
    const started = yield* session.send({
      method: "POST",
      path: "blobs/uploads/",
      operation,
      repeatable: true,
    })
    if (started.status !== 202) return yield* session.failure(started, operation)
    const first = started.headers["location"]
    if (first === undefined) {
      return yield* new RegistryRefused({
        registry: session.reference.registry,
        operation,
        detail: "no upload location",
      })
    }
    return {
      location: new URL(first, session.url("blobs/uploads/")).href,
      chunked: uploadChunk(started.headers["oci-chunk-min-length"]),
    }
  })

/** One PATCH of an upload to `target`: `body`, the blob's bytes `range` when it goes in chunks. */
const patchChunk = (
  session: RegistrySession,
  target: string,
  range: string | undefined,
  body: () => HttpBody.HttpBody,
  operation: string,
) =>
  session.send({
    method: "PATCH",
    path: target,
    headers: {
      "content-type": "application/octet-stream",
      ...(range !== undefined ? { "content-range": range } : {}),
    },
    body,
    operation,
    repeatable: false,
  }).pipe(
    Effect.flatMap((response) =>
      response.status === 202 ? Effect.succeed(response) : session.failure(response, operation)
    ),
    // A dropped connection or no answer: ask how far the registry got, and go on from there.
    Effect.catchTags({
      RegistryUnreachable: (error) => resumeAt(session, target, error),
      RegistryStalled: (error) => resumeAt(session, target, error),
    }),
    Effect.retry({
      schedule: Schedule.exponential(Duration.millis(250)),
      times: PATCH_ATTEMPTS - 1,
      while: (error) => error._tag === "RegistryUnreachable" || error._tag === "RegistryStalled",
    }),
  )

/** The blob from `offset` on, in one request. */
const blobFrom = (session: RegistrySession, blob: BlobDescriptor, offset: number) =>
  Stream.unwrapScoped(Effect.gen(function* () {
    const operation = `download blob ${blob.digest}`
    const response = yield* session.send({
      method: "GET",
      path: `blobs/${blob.digest}`,
      headers: resumeRange(offset),
      operation,
      streamed: true,
    })
    const expected = offset > 0 ? 206 : 200
    if (response.status !== expected) {
      return yield* session.failure(response, operation, blob.digest)
    }
    return response.stream
  }))

/**
 * The blob from `offset` on, resumed where it stopped when its connection drops or its bytes
 * stop coming (bulk_fetch.ts bounds each read); when it stops again after the last resume,
 * RegistryStalled or RegistryTransferInterrupted.
 */
const resumedBlob = (session: RegistrySession, blob: BlobDescriptor, offset: number) =>
  Stream.unwrap(Effect.map(Ref.make(offset), (received) => {
    const from = (resumes: number): Stream.Stream<Uint8Array, RegistryError | ResponseError> =>
      Stream.unwrap(
        Effect.map(Ref.get(received), (at) =>
          blobFrom(session, blob, at).pipe(
            Stream.tap((chunk) => Ref.update(received, (count) => count + chunk.length)),
            Stream.catchAll((error) =>
              error._tag === "ResponseError" && resumes < RESUMES
                ? from(resumes + 1)
                : Stream.fail(error)
            ),
          )),
      )
    return from(0).pipe(
      Stream.mapError((error) =>
        error._tag === "ResponseError" && error.cause instanceof NothingArrived
          ? new RegistryStalled({
            registry: session.reference.registry,
            operation: `download blob ${blob.digest} of ${session.describe}`,
            url: session.url(`blobs/${blob.digest}`),
            cause: error.cause,
          })
          : error._tag === "ResponseError"
          ? new RegistryTransferInterrupted({
            registry: session.reference.registry,
            digest: blob.digest,
            cause: error.cause ?? error,
          })
          : error
      ),
    )
  }))

// Long: the repository's five operations (each its own Effect.fn) share its session.
const repositoryOver = (session: RegistrySession): Repository => {
  const registry = session.reference.registry
  const describe = session.describe

  const fetchManifest = Effect.fn("Registry.fetchManifest")(function* (at: string) {
    const operation = `fetch the manifest of ${describe}`
    const response = yield* session.send({
      method: "GET",
      path: `manifests/${at}`,
      headers: { accept: MANIFEST_ACCEPT },
      operation,
    })
    if (response.status === 404) {
      // Registries answer "manifest unknown" for a repository they lack too: ask which it is.
      const tags = yield* session.send({ method: "GET", path: "tags/list", operation })
      return yield* new RegistryNotFound(
        tags.status === 404
          ? { reference: describe, what: "repository", name: session.reference.repository }
          : { reference: describe, what: at.startsWith("sha256:") ? "digest" : "tag", name: at },
      )
    }
    if (response.status !== 200) return yield* session.failure(response, operation)
    const bytes = yield* manifestBody(response, session, operation)
    return {
      bytes,
      mediaType: response.headers["content-type"] ?? "",
      digest: bytesDigest(bytes),
    } satisfies FetchedManifest
  }, Effect.scoped)

  const putManifest = Effect.fn("Registry.putManifest")(function* (
    tag: string,
    manifest: Uint8Array,
    mediaType: string,
  ) {
    const operation = `store the manifest of ${describe}`
    const response = yield* session.send({
      method: "PUT",
      path: `manifests/${tag}`,
      headers: { "content-type": mediaType },
      body: () => HttpBody.uint8Array(manifest, mediaType),
      operation,
      repeatable: true,
    })
    if (response.status !== 201) return yield* session.failure(response, operation)
    return bytesDigest(manifest)
  }, Effect.scoped)

  const blobExists = Effect.fn("Registry.blobExists")(function* (digest: string) {
    const operation = `check for blob ${digest}`
    const present = yield* session.send({ method: "HEAD", path: `blobs/${digest}`, operation })
    if (present.status === 200) return true
    if (present.status === 404) return false
    return yield* session.failure(present, operation)
  }, Effect.scoped)

  const openBlob = (blob: BlobDescriptor, offset = 0) =>
    resumedBlob(session, blob, offset).pipe(
      Stream.withSpan("Registry.openBlob", { attributes: { digest: blob.digest } }),
    )

  const uploadBlob = Effect.fn("Registry.uploadBlob")(function* (
    content: UploadContent,
    options: UploadOptions = {},
  ) {
    const blob = contentReader(content)
    const operation = `upload ${
      options.expected === undefined ? "a blob" : `blob ${options.expected}`
    }`
    const started = yield* startUpload(session, operation)
    let location = started.location
    const chunked = started.chunked
    const chunk = chunked ?? blob.size

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
              return options.onProgress === undefined ? Effect.void : options.onProgress(fresh)
            })
          ),
          Stream.mapError((cause) => new BlobUnreadable({ cause })),
        )
      })

    let offset = 0
    while (offset < blob.size) {
      const from = offset
      const to = Math.min(offset + chunk, blob.size)
      const target: string = location
      const sent: HttpClientResponse.HttpClientResponse = yield* patchChunk(
        session,
        target,
        chunked === undefined ? undefined : chunkRange(from, to),
        () => HttpBody.stream(counted(from, to), "application/octet-stream"),
        operation,
      )
      const next = sent.headers["location"]
      if (next !== undefined) location = new URL(next, target).href
      offset = nextOffset(from, to, sent.headers["range"])
      if (offset === from) {
        return yield* new RegistryRefused({
          registry,
          operation,
          detail: "the upload made no progress",
        })
      }
    }
    const digest = yield* uploadedDigest({
      registry,
      size: blob.size,
      read: hashed,
      sha256: hash.digest("hex"),
      expected: options.expected,
    })
    const done = new URL(location)
    done.searchParams.set("digest", digest)
    const finished = yield* session.send({
      method: "PUT",
      path: done.href,
      operation: `upload blob ${digest}`,
      repeatable: false,
    })
    if (finished.status !== 201) return yield* session.failure(finished, `upload blob ${digest}`)
    return digest
  }, Effect.scoped)

  return {
    reference: session.reference,
    describe,
    fetchManifest,
    putManifest,
    blobExists,
    openBlob,
    uploadBlob,
  }
}

/** The Registry over HTTP with `options`; what it runs on is resolved now. */
export const makeRegistryHttp = Effect.fn("RegistryHttp.make")(function* (
  options: RegistryOptions,
) {
  const context = yield* Effect.context<RegistryRequirements>()
  const repository = (reference: OciReference, access: RegistryAccess) =>
    openRegistry(reference, access, options).pipe(
      Effect.map(repositoryOver),
      Effect.provide(context),
    )
  return { repository } satisfies RegistryShape
})

/** The Registry over HTTP, its options from the environment (`plainHttp`: `--plain-http`). */
export const RegistryHttp = (
  plainHttp: boolean,
): Layer.Layer<
  Registry,
  ConfigError.ConfigError,
  HttpClient.HttpClient | FileSystem.FileSystem | CommandExecutor.CommandExecutor
> => Layer.effect(Registry, Effect.flatMap(registryConfig(plainHttp), makeRegistryHttp))
