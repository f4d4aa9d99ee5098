/**
 * The registry protocol's pure rules (src/domain/registry_protocol.ts): WWW-Authenticate
 * challenges, upload and download offsets, token scopes, what a 404 names, and the digest an
 * upload ends with.
 */
import assert from "node:assert/strict"
import { parseOciReference } from "../../src/domain/oci_reference.ts"
import {
  challengeParameters,
  missingThing,
  nextOffset,
  resumeRange,
  tokenScope,
  uploadChunk,
  uploadedDigest,
  uploadedUpTo,
} from "../../src/domain/registry_protocol.ts"
import { left, right } from "../support/either.ts"

Deno.test("WWW-Authenticate challenges: quoted and bare parameters", () => {
  assert.deepEqual(
    challengeParameters(
      'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"',
    ),
    {
      realm: "https://auth.example/token",
      service: "registry.example",
      scope: "repository:a/b:pull,push",
    },
  )
  assert.deepEqual(challengeParameters('Basic realm="x \\"y\\""'), { realm: 'x "y"' })
})

Deno.test("upload offsets: the registry's Range, chunk sizes, resumed downloads and scopes", () => {
  assert.equal(uploadedUpTo("0-99"), 100)
  assert.equal(uploadedUpTo("bytes=0-0"), 1)
  assert.equal(uploadedUpTo("5-9"), undefined)
  assert.equal(uploadedUpTo(undefined), undefined)
  // A PATCH of [100, 200): the registry's word, kept within the chunk; none means all of it.
  assert.equal(nextOffset(100, 200, "0-149"), 150)
  assert.equal(nextOffset(100, 200, "0-999"), 200)
  assert.equal(nextOffset(100, 200, "0-9"), 100)
  assert.equal(nextOffset(100, 200, undefined), 200)
  assert.equal(uploadChunk(undefined), undefined)
  assert.equal(uploadChunk("0"), undefined)
  assert.equal(uploadChunk("1024"), 8 * 1024 * 1024)
  assert.equal(uploadChunk(String(64 * 1024 * 1024)), 64 * 1024 * 1024)
  assert.equal(uploadChunk(String(1024 ** 3)), 256 * 1024 * 1024)
  assert.deepEqual(resumeRange(0), {})
  assert.deepEqual(resumeRange(42), { range: "bytes=42-" })
  assert.equal(tokenScope("team/disk", "pull"), "repository:team/disk:pull")
  assert.equal(tokenScope("team/disk", "push"), "repository:team/disk:pull,push")
})

Deno.test("a 404 names what is missing: the codes first, else what the reference names", () => {
  const tagged = right(parseOciReference("r.example/team/disk:1"))
  const pinned = right(parseOciReference(`r.example/team/disk@sha256:${"a".repeat(64)}`))
  assert.deepEqual(missingThing(new Set(["NAME_UNKNOWN"]), tagged, "x"), {
    what: "repository",
    name: "team/disk",
  })
  assert.deepEqual(missingThing(new Set(["BLOB_UNKNOWN"]), tagged, "sha256:b"), {
    what: "blob",
    name: "sha256:b",
  })
  assert.deepEqual(missingThing(new Set(), tagged, "x"), { what: "tag", name: "1" })
  assert.deepEqual(missingThing(new Set(), pinned, "x"), {
    what: "digest",
    name: `sha256:${"a".repeat(64)}`,
  })
})

Deno.test("an upload's digest: refused when the bytes read are not the blob's size or hash to another digest", () => {
  const sha256 = "c".repeat(64)
  const upload = { registry: "r.example", size: 10, read: 10, sha256, expected: undefined }
  assert.equal(right(uploadedDigest(upload)), `sha256:${sha256}`)
  assert.equal(
    right(uploadedDigest({ ...upload, expected: `sha256:${sha256}` })),
    `sha256:${sha256}`,
  )
  const changed = left(uploadedDigest({ ...upload, read: 9 }))
  assert.equal(changed._tag, "BlobUnreadable")
  assert.match(changed.message, /the file changed while it was read/)
  const other = left(uploadedDigest({ ...upload, expected: `sha256:${"d".repeat(64)}` }))
  assert.equal(other._tag, "RegistryDigestMismatch")
  assert.equal(
    other.message,
    `Registry r.example was not sent blob sha256:${
      "d".repeat(64)
    }: the bytes read hash to sha256:${sha256}`,
  )
})
