/**
 * The pure rules of the OCI distribution protocol, as both registry implementations (HTTP and
 * memory) follow them: what a WWW-Authenticate challenge asks for, what an error body says, which
 * thing a 404 says is missing, how far an upload has got and whether it sent what it meant to.
 */
import * as Either from "effect/Either"
import { BlobUnreadable, RegistryDigestMismatch } from "./errors/registry.ts"
import type { OciReference } from "./oci_reference.ts"

/** `key="value"` parameters of a WWW-Authenticate challenge. */
export const challengeParameters = (header: string): Record<string, string> => {
  const parameters: Record<string, string> = {}
  for (const match of header.matchAll(/([A-Za-z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) {
    const key = (match[1] ?? "").toLowerCase()
    parameters[key] = (match[2] ?? match[3] ?? "").replace(/\\(.)/g, "$1")
  }
  return parameters
}

/** The scheme a challenge asks for, lower-case (`bearer`, `basic`), or "" for none. */
export const challengeScheme = (header: string): string =>
  header.trim().split(/\s+/)[0]?.toLowerCase() ?? ""

/** The token scope of a repository for `access`: a push token may pull too. */
export const tokenScope = (repository: string, access: "pull" | "push"): string =>
  `repository:${repository}:${access === "push" ? "pull,push" : "pull"}`

/** The `Authorization` value of Basic credentials. */
export const basicAuthorization = (username: string, password: string): string => {
  const bytes = new TextEncoder().encode(`${username}:${password}`)
  return `Basic ${btoa(String.fromCharCode(...bytes))}`
}

export interface RegistryErrorEntry {
  readonly code: string
  readonly message: string
}

/** The registry's own words from an error body (`{"errors":[{"code","message"}]}`). */
export const registryErrorEntries = (body: string): ReadonlyArray<RegistryErrorEntry> => {
  try {
    const parsed = JSON.parse(body) as { errors?: ReadonlyArray<Record<string, unknown>> }
    return (parsed.errors ?? []).map((error) => ({
      code: String(error.code ?? ""),
      message: String(error.message ?? ""),
    }))
  } catch {
    return []
  }
}

/** What a 404 says is missing, and its name: the codes decide, else what the request named. */
export const missingThing = (
  codes: ReadonlySet<string>,
  reference: OciReference,
  fallback: string,
): { readonly what: "repository" | "tag" | "digest" | "blob"; readonly name: string } =>
  codes.has("NAME_UNKNOWN")
    ? { what: "repository", name: reference.repository }
    : codes.has("BLOB_UNKNOWN")
    ? { what: "blob", name: fallback }
    : reference.digest !== undefined && reference.tag === undefined
    ? { what: "digest", name: reference.digest }
    : { what: "tag", name: reference.tag ?? "latest" }

/** Where the registry says an upload has got to (its `Range` header): the first byte it lacks. */
export const uploadedUpTo = (range: string | undefined): number | undefined => {
  const match = /^(?:bytes=)?0-(\d+)$/.exec(range?.trim() ?? "")
  return match ? Number(match[1]) + 1 : undefined
}

/** The smallest chunk when the registry asks for chunks (`OCI-Chunk-Min-Length`). */
const CHUNK = 8 * 1024 * 1024
/** The most a registry's minimum chunk length may make a chunk. */
const MAX_CHUNK = 256 * 1024 * 1024

/** The bytes one PATCH sends when a registry's minimum chunk length asks for chunks; else none. */
export const uploadChunk = (minimumHeader: string | undefined): number | undefined => {
  const minimum = Number(minimumHeader ?? 0)
  return Number.isFinite(minimum) && minimum > 0
    ? Math.min(MAX_CHUNK, Math.max(CHUNK, minimum))
    : undefined
}

/** The `Content-Range` of a chunk [from, to), when the upload is chunked. */
export const chunkRange = (from: number, to: number): string => `${from}-${to - 1}`

/** The next offset after a PATCH of [from, to), from what the registry says it holds. */
export const nextOffset = (from: number, to: number, range: string | undefined): number =>
  Math.max(from, Math.min(to, uploadedUpTo(range) ?? to))

/** The `Range` header of a blob download resumed at `offset`, none from the start. */
export const resumeRange = (offset: number): Record<string, string> =>
  offset > 0 ? { range: `bytes=${offset}-` } : {}

/**
 * The digest of an upload's bytes, once all were read and hashed (`sha256`, hex): refused when
 * the count differs from the blob's size (the file changed while it was read) or when the
 * caller expected another digest.
 */
export const uploadedDigest = (upload: {
  readonly registry: string
  readonly size: number
  readonly read: number
  readonly sha256: string
  readonly expected: string | undefined
}): Either.Either<string, BlobUnreadable | RegistryDigestMismatch> => {
  if (upload.read !== upload.size) {
    return Either.left(
      new BlobUnreadable({ cause: new Error("the file changed while it was read") }),
    )
  }
  const digest = `sha256:${upload.sha256}`
  return upload.expected !== undefined && upload.expected !== digest
    ? Either.left(
      new RegistryDigestMismatch({
        registry: upload.registry,
        expected: upload.expected,
        actual: digest,
      }),
    )
    : Either.right(digest)
}

/** A token endpoint's answer is a few kilobytes of JSON; a larger one is not an answer. */
export const MAX_TOKEN_BYTES = 1024 * 1024
/** Of an error answer's body, only this much is read: its first line or JSON is the message. */
export const MAX_ERROR_BODY_BYTES = 64 * 1024

/** `bytes` as a size in messages: `4 MiB`, `64 KiB`, `512 bytes`. */
export const describeLimit = (bytes: number): string =>
  bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0
    ? `${bytes / 1024 / 1024} MiB`
    : bytes >= 1024 && bytes % 1024 === 0
    ? `${bytes / 1024} KiB`
    : `${bytes} bytes`

/**
 * Why a manifest answer is refused for its size against `limit`: its announced `size`, or, when
 * it came without a length, that it ran past the limit.
 */
export const oversizedManifest = (limit: number, size?: number): string =>
  size === undefined
    ? `a manifest sent without a length ran past the ${describeLimit(limit)} limit`
    : `a ${size}-byte manifest (the limit is ${describeLimit(limit)})`

/** The byte count after `chunk` is added to `total`, or undefined when it passes `limit`. */
export const countWithin = (total: number, chunk: number, limit: number): number | undefined =>
  total + chunk > limit ? undefined : total + chunk
