/**
 * Where the blobs of one container image source are, behind one shape: small documents (manifests,
 * configs) read whole and verified against their digests, and blobs streamed as stored for the
 * reader to hash. The registry's, here; those of the build context's files in context_files.ts.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { bytesDigest } from "../../domain/blob_content.ts"
import {
  ContainerBlobCorrupt,
  type ContainerImageError,
  ContainerJsonMalformed,
  ContainerManifestTampered,
} from "../../domain/errors/container.ts"
import { type Descriptor, MAX_MANIFEST_BYTES } from "../../domain/oci_manifest.ts"
import type { Repository } from "../../services/registry.ts"

/** The sha256 digest of `stream`'s bytes, read to its end. */
export const sha256Of = <E>(stream: Stream.Stream<Uint8Array, E>) =>
  Effect.map(
    Stream.runFold(stream, createHash("sha256"), (hash, chunk) => hash.update(chunk)),
    (hash) => `sha256:${hash.digest("hex")}`,
  )

export const DIGEST = /^sha256:[a-f0-9]{64}$/
/** Configs are small, like manifests; a larger one is not one. */
export const MAX_DOCUMENT_BYTES = MAX_MANIFEST_BYTES

/** A document read whole: its bytes and their digest. */
export interface Document {
  readonly bytes: Uint8Array
  readonly digest: string
}

/**
 * Where one source's blobs are: `document` reads a small one whole, verified against its
 * digest; `blob` streams one as stored, unverified (the reader hashes it).
 */
export interface BlobStore {
  readonly document: (
    descriptor: Descriptor,
    kind: "manifest" | "config",
  ) => Effect.Effect<Document, ContainerImageError>
  readonly blob: (
    descriptor: { readonly digest: string; readonly size: number },
  ) => Stream.Stream<Uint8Array, ContainerImageError>
}

/** The bytes of `stream`, at most `limit` of them. */
export const collected = <E, E2>(
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

export const checkedDigest = (source: string, descriptor: Descriptor) =>
  DIGEST.test(descriptor.digest) ? Effect.void : Effect.fail(
    new ContainerJsonMalformed({
      source,
      document: "manifest",
      reason: `'${descriptor.digest}' is not a sha256 digest`,
    }),
  )

/** `bytes` as the document `descriptor` names, or the error saying they hash otherwise. */
export const verifiedDocument = (source: string, descriptor: Descriptor, bytes: Uint8Array) => {
  const digest = bytesDigest(bytes)
  return digest === descriptor.digest
    ? Effect.succeed({ bytes, digest })
    : Effect.fail(new ContainerBlobCorrupt({ source, digest: descriptor.digest, actual: digest }))
}

export const registryStore = (source: string, repository: Repository): BlobStore => ({
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

export const blobName = (digest: string) => `blobs/sha256/${digest.slice("sha256:".length)}`
