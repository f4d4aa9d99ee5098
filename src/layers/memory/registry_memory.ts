/**
 * Registry in memory: repositories (manifests by tag and by digest, blobs) in a MemoryRegistries
 * value that tests fill and look into. It fails as RegistryHttp does — the same tags for a
 * missing repository, tag, digest or blob, an oversized manifest, a digest that does not match,
 * a repository that refuses access — so that a fake build, push or pull meets the real errors.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { bytesDigest } from "../../domain/blob_content.ts"
import {
  BlobUnreadable,
  RegistryNotFound,
  RegistryRefused,
  RegistryUnauthorized,
} from "../../domain/errors/registry.ts"
import { MAX_MANIFEST_BYTES } from "../../domain/oci_manifest.ts"
import { formatOciReference, type OciReference } from "../../domain/oci_reference.ts"
import { oversizedManifest, uploadedDigest } from "../../domain/registry_protocol.ts"
import {
  type BlobDescriptor,
  type FetchedManifest,
  Registry,
  type RegistryAccess,
  type Repository,
  type UploadContent,
  type UploadOptions,
} from "../../services/registry.ts"
import { contentReader } from "../registry/blob_source.ts"

export interface StoredManifest {
  readonly bytes: Uint8Array
  readonly mediaType: string
}

/** One repository's content. */
export interface MemoryRepository {
  /** By tag and by digest. */
  readonly manifests: Map<string, StoredManifest>
  readonly blobs: Map<string, Uint8Array>
}

/** The registries' state, shared with the tests that fill it and assert on it. */
export class MemoryRegistries {
  /** By `REGISTRY/REPOSITORY`. */
  readonly repositories = new Map<string, MemoryRepository>()
  /** `REGISTRY/REPOSITORY`s that refuse every request, as one without credentials would. */
  readonly locked = new Set<string>()
  /** Every operation, in order: `put-manifest team/disk:1`, `upload sha256:…`. */
  readonly log: Array<string> = []

  /** The repository at `name` (`REGISTRY/REPOSITORY`), made empty when missing. */
  repository(name: string): MemoryRepository {
    let found = this.repositories.get(name)
    if (found === undefined) {
      found = { manifests: new Map(), blobs: new Map() }
      this.repositories.set(name, found)
    }
    return found
  }
}

const repositoryIn = (
  state: MemoryRegistries,
  reference: OciReference,
  access: RegistryAccess,
): Repository => {
  const registry = reference.registry
  const name = `${registry}/${reference.repository}`
  const describe = formatOciReference(reference)
  const allowed = Effect.suspend(() =>
    state.locked.has(name)
      ? Effect.fail(
        new RegistryUnauthorized({
          registry,
          repository: reference.repository,
          action: access,
          tried: "no credentials for this registry",
        }),
      )
      : Effect.void
  )
  const content = () => state.repositories.get(name)

  const fetchManifest = Effect.fn("Registry.fetchManifest")(function* (at: string) {
    yield* allowed
    state.log.push(`fetch-manifest ${reference.repository}:${at}`)
    const held = content()
    if (held === undefined || held.manifests.size === 0) {
      return yield* new RegistryNotFound({
        reference: describe,
        what: "repository",
        name: reference.repository,
      })
    }
    const manifest = held.manifests.get(at)
    if (manifest === undefined) {
      return yield* new RegistryNotFound({
        reference: describe,
        what: at.startsWith("sha256:") ? "digest" : "tag",
        name: at,
      })
    }
    if (manifest.bytes.length > MAX_MANIFEST_BYTES) {
      return yield* new RegistryRefused({
        registry,
        operation: `fetch the manifest of ${describe}`,
        detail: oversizedManifest(MAX_MANIFEST_BYTES, manifest.bytes.length),
      })
    }
    return {
      bytes: manifest.bytes.slice(),
      mediaType: manifest.mediaType,
      digest: bytesDigest(manifest.bytes),
    } satisfies FetchedManifest
  })

  const putManifest = Effect.fn("Registry.putManifest")(function* (
    tag: string,
    manifest: Uint8Array,
    mediaType: string,
  ) {
    yield* allowed
    const digest = bytesDigest(manifest)
    const stored = { bytes: manifest.slice(), mediaType }
    const held = state.repository(name)
    held.manifests.set(tag, stored)
    held.manifests.set(digest, stored)
    state.log.push(`put-manifest ${reference.repository}:${tag}`)
    return digest
  })

  const blobExists = Effect.fn("Registry.blobExists")(function* (digest: string) {
    yield* allowed
    return content()?.blobs.has(digest) ?? false
  })

  const openBlob = (blob: BlobDescriptor, offset = 0) =>
    Stream.unwrap(Effect.gen(function* () {
      yield* allowed
      const bytes = content()?.blobs.get(blob.digest)
      if (bytes === undefined) {
        return yield* new RegistryNotFound({ reference: describe, what: "blob", name: blob.digest })
      }
      state.log.push(`open-blob ${blob.digest}${offset > 0 ? ` from ${offset}` : ""}`)
      return Stream.make(bytes.slice(offset))
    })).pipe(Stream.withSpan("Registry.openBlob", { attributes: { digest: blob.digest } }))

  const uploadBlob = Effect.fn("Registry.uploadBlob")(function* (
    upload: UploadContent,
    options: UploadOptions = {},
  ) {
    yield* allowed
    const reader = contentReader(upload)
    const hash = createHash("sha256")
    const whole = new Uint8Array(reader.size)
    let received = 0
    yield* reader.read(0, reader.size).pipe(
      Stream.mapError((cause) => new BlobUnreadable({ cause })),
      Stream.runForEach((chunk) =>
        Effect.suspend(() => {
          hash.update(chunk)
          whole.set(chunk, received)
          received += chunk.length
          return options.onProgress === undefined ? Effect.void : options.onProgress(chunk.length)
        })
      ),
    )
    const digest = yield* uploadedDigest({
      registry,
      size: reader.size,
      read: received,
      sha256: hash.digest("hex"),
      expected: options.expected,
    })
    state.repository(name).blobs.set(digest, whole)
    state.log.push(`upload ${digest}`)
    return digest
  })

  return { reference, describe, fetchManifest, putManifest, blobExists, openBlob, uploadBlob }
}

/** The Registry on `state`. */
export const RegistryMemory = (state: MemoryRegistries = new MemoryRegistries()) =>
  Layer.succeed(Registry, {
    repository: (reference, access) => Effect.sync(() => repositoryIn(state, reference, access)),
  })
