/**
 * Registry: the repositories of OCI registries, in the small capabilities the image store, `image
 * push` and the registry build cache need (after oras-go's): resolve and fetch a manifest, put
 * one, ask whether a blob is there, read a blob as a byte stream (resumable from an offset), and
 * upload one, its digest computed as it is sent. How a registry is reached (credentials, tokens,
 * plain HTTP) is the implementation's business, settled when its layer is built.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Stream from "effect/Stream"
import type { BlobContent } from "../domain/blob_content.ts"
import {
  type BlobUnreadable,
  InvalidOciReference,
  type RegistryError,
} from "../domain/errors/registry.ts"
import { type OciReference, parseOciReference } from "../domain/oci_reference.ts"

/** What a repository is opened for: the credentials asked for and the errors' wording follow. */
export type RegistryAccess = "pull" | "push"

/** A manifest (or index) as the registry holds it, read whole (at most MAX_MANIFEST_BYTES). */
export interface FetchedManifest {
  readonly bytes: Uint8Array
  /** The media type the registry gave it (`Content-Type`); "" when it gave none. */
  readonly mediaType: string
  /** The sha256 of `bytes`, as computed here. */
  readonly digest: string
}

/** A blob's address and size, as a manifest lists it. */
export interface BlobDescriptor {
  readonly digest: string
  readonly size: number
}

/** A blob to upload: its segments, files open for reading. */
export type UploadContent = BlobContent<FileSystem.File>

export interface UploadOptions {
  /** The digest the bytes must have; a mismatch fails, and the registry keeps nothing. */
  readonly expected?: string
  /** Told each byte count first read and sent (not those sent again after a dropped chunk). */
  readonly onProgress?: (bytes: number) => Effect.Effect<void>
}

/** One repository of one registry (`REGISTRY/REPOSITORY`), as `reference` names it. */
export interface Repository {
  readonly reference: OciReference
  /** The reference as the user wrote it, for messages. */
  readonly describe: string
  /**
   * The manifest at `at` (a tag or a digest). A missing one is RegistryNotFound, saying whether
   * the repository, the tag or the digest is what is missing.
   */
  readonly fetchManifest: (at: string) => Effect.Effect<FetchedManifest, RegistryError>
  /** Store `manifest` under `tag`; its digest. */
  readonly putManifest: (
    tag: string,
    manifest: Uint8Array,
    mediaType: string,
  ) => Effect.Effect<string, RegistryError>
  readonly blobExists: (digest: string) => Effect.Effect<boolean, RegistryError>
  /**
   * The blob's bytes from `offset` on; a connection that drops midway is resumed where it broke
   * off. The bytes are not verified here: the reader hashes them as it consumes them.
   */
  readonly openBlob: (
    blob: BlobDescriptor,
    offset?: number,
  ) => Stream.Stream<Uint8Array, RegistryError>
  /** Upload `content`; its digest. */
  readonly uploadBlob: (
    content: UploadContent,
    options?: UploadOptions,
  ) => Effect.Effect<string, RegistryError | BlobUnreadable>
}

export interface RegistryShape {
  /** The repository `reference` names, opened for `access`; nothing is sent yet. */
  readonly repository: (
    reference: OciReference,
    access: RegistryAccess,
  ) => Effect.Effect<Repository>
}

export class Registry extends Context.Tag("transient/Registry")<Registry, RegistryShape>() {}

/** The repository `text` names (a tag is `latest` when none is given), opened for `access`. */
export const repositoryAt = (
  text: string,
  access: RegistryAccess,
): Effect.Effect<Repository, InvalidOciReference, Registry> =>
  Effect.gen(function* () {
    const reference = yield* Either.mapLeft(
      parseOciReference(text),
      (reason) => new InvalidOciReference({ reference: text, reason }),
    )
    const registry = yield* Registry
    return yield* registry.repository(reference, access)
  })
