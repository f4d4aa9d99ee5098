/**
 * An image in an OCI registry as a source: its manifest (through an index to this host's
 * platform), verified against the digest it was asked for, read into where its disk is; then
 * the blob holding the disk as a byte stream that resumes (a `Range` request) where a dropped
 * connection left it, verified by download.ts against the blob's digest.
 */
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import {
  chooseFromIndex,
  type Descriptor,
  type DiskLayout,
  diskLayout,
  isIndex,
  type Manifest,
  MANIFEST_ACCEPT,
  ManifestOrIndex,
} from "../../domain/oci_manifest.ts"
import { formatOciReference, type OciReference } from "../../domain/oci_reference.ts"
import type { ResponseError } from "@effect/platform/HttpClientError"
import {
  NotADiskImage,
  type RegistryError,
  RegistryNotFound,
  RegistryRefused,
} from "../../domain/registry_errors.ts"
import { ChecksumMismatch } from "../../domain/errors/store.ts"
import {
  openRegistry,
  type RegistryOptions,
  type RegistrySession,
} from "../registry/registry_client.ts"
import type { OpenedSource } from "./sources.ts"

/** Manifests are small; a larger answer is not one. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024
/** Times a blob download is resumed after its connection drops. */
const RESUMES = 3

const sha256 = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`

const bodyBytes = (
  response: HttpClientResponse.HttpClientResponse,
  operation: string,
  registry: string,
) =>
  Effect.gen(function* () {
    const length = Number(response.headers["content-length"] ?? 0)
    if (length > MAX_MANIFEST_BYTES) {
      return yield* new RegistryRefused({
        registry,
        operation,
        detail: `a ${length}-byte manifest`,
      })
    }
    const buffer = yield* response.arrayBuffer.pipe(
      Effect.mapError((error) =>
        new RegistryRefused({ registry, operation, detail: String(error.cause ?? error.message) })
      ),
    )
    return new Uint8Array(buffer)
  })

/** The manifest (or index) at `reference` (a tag or digest), checked against `digest` if given. */
const fetchManifest = (
  image: string,
  session: RegistrySession,
  at: string,
  digest: string | undefined,
) =>
  Effect.scoped(Effect.gen(function* () {
    const registry = session.reference.registry
    const operation = `fetch the manifest of ${session.describe}`
    const response = yield* session.send({
      method: "GET",
      path: `manifests/${at}`,
      headers: { accept: MANIFEST_ACCEPT },
      operation,
    })
    if (response.status === 404) {
      // Registries answer "manifest unknown" for a repository they lack too: ask which it is.
      const tags = yield* session.send({ method: "GET", path: "tags/list", operation })
      if (tags.status === 404) {
        return yield* new RegistryNotFound({
          reference: session.describe,
          what: "repository",
          name: session.reference.repository,
        })
      }
    }
    if (response.status !== 200) return yield* session.failure(response, operation)
    const bytes = yield* bodyBytes(response, operation, registry)
    if (digest !== undefined) {
      const actual = sha256(bytes)
      if (actual !== digest) {
        return yield* new ChecksumMismatch({
          image,
          source: `the manifest of ${session.describe}`,
          algorithm: "sha256",
          expected: digest.slice("sha256:".length),
          actual: actual.slice("sha256:".length),
        })
      }
    }
    const notManifest = new NotADiskImage({
      reference: session.describe,
      reason: "the registry's answer is not an OCI or Docker v2 manifest",
    })
    const json = yield* Effect.try(() => JSON.parse(new TextDecoder().decode(bytes)) as unknown)
      .pipe(Effect.mapError(() => notManifest))
    return yield* Schema.decodeUnknown(ManifestOrIndex)(json).pipe(
      Effect.mapError(() => notManifest),
    )
  }))

export interface OciDisk {
  readonly session: RegistrySession
  readonly layout: DiskLayout
}

/** Where the disk of `reference` is, from its manifest. */
export const resolveOciDisk = (
  image: string,
  reference: OciReference,
  options: RegistryOptions,
) =>
  Effect.gen(function* () {
    const session = yield* openRegistry(reference, "pull", options)
    const describe = formatOciReference(reference)
    const top = yield* fetchManifest(
      image,
      session,
      reference.digest ?? reference.tag ?? "latest",
      reference.digest,
    )
    let manifest: Manifest
    if (isIndex(top)) {
      const entry = yield* Either.mapLeft(
        chooseFromIndex(top),
        (reason) => new NotADiskImage({ reference: describe, reason }),
      )
      const chosen = yield* fetchManifest(image, session, entry.digest, entry.digest)
      if (isIndex(chosen)) {
        return yield* new NotADiskImage({
          reference: describe,
          reason: "it nests one index in another",
        })
      }
      manifest = chosen
    } else {
      manifest = top
    }
    const layout = yield* Either.mapLeft(
      diskLayout(manifest),
      (reason) => new NotADiskImage({ reference: describe, reason }),
    )
    return { session, layout } satisfies OciDisk
  })

/** The blob `descriptor`, from `offset` on. */
const blobFrom = (session: RegistrySession, descriptor: Descriptor, offset: number) =>
  Stream.unwrapScoped(Effect.gen(function* () {
    const operation = `download blob ${descriptor.digest}`
    const response = yield* session.send({
      method: "GET",
      path: `blobs/${descriptor.digest}`,
      headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
      operation,
      streamed: true,
    })
    const expected = offset > 0 ? 206 : 200
    if (response.status !== expected) return yield* session.failure(response, operation)
    return response.stream
  }))

/** The bytes of `descriptor`, resumed from where they stopped when the connection drops. */
const resumableBlob = (session: RegistrySession, descriptor: Descriptor) =>
  Stream.unwrap(Effect.map(Ref.make(0), (received) => {
    const from = (resumes: number): Stream.Stream<Uint8Array, RegistryError | ResponseError> =>
      Stream.unwrap(
        Effect.map(Ref.get(received), (offset) =>
          blobFrom(session, descriptor, offset).pipe(
            Stream.tap((chunk) => Ref.update(received, (count) => count + chunk.length)),
            Stream.catchAll((error) =>
              error._tag === "ResponseError" && resumes < RESUMES
                ? from(resumes + 1)
                : Stream.fail(error)
            ),
          )),
      )
    return from(0)
  }))

/** The source of one layer of `disk`. */
export const openOciLayer = (
  disk: OciDisk,
  descriptor: Descriptor,
): OpenedSource => ({
  ...openBlob(disk.session, descriptor),
  ...(disk.layout._tag === "ContainerDisk" ? { archive: "ContainerDisk" as const } : {}),
})

/** The blob `descriptor` of the session's repository, to be verified against its digest. */
export const openBlob = (session: RegistrySession, descriptor: Descriptor): OpenedSource => ({
  bytes: resumableBlob(session, descriptor),
  size: descriptor.size,
  checksum: { type: "sha256", value: descriptor.digest.slice("sha256:".length) },
})

/** The layers that may hold the disk, in the order to try them. */
export const diskCandidates = (disk: OciDisk): ReadonlyArray<Descriptor> =>
  disk.layout._tag === "Artifact" ? [disk.layout.layer] : disk.layout.layers
