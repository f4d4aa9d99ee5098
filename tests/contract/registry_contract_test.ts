/**
 * The Registry port's contract, run against RegistryMemory and against RegistryHttp talking to
 * the in-process registry of tests/support/fake_registry.ts on 127.0.0.1: the same operations
 * give the same results, and fail with the same tags, on both.
 */
import assert from "node:assert/strict"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Chunk from "effect/Chunk"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { bytesDigest, containerDiskContent } from "../../src/domain/blob_content.ts"
import { MAX_MANIFEST_BYTES, MediaType } from "../../src/domain/oci_manifest.ts"
import { parseOciReference } from "../../src/domain/oci_reference.ts"
import { MemoryRegistries, RegistryMemory } from "../../src/layers/memory/registry_memory.ts"
import { RegistryHttp } from "../../src/layers/registry/registry_http.ts"
import { Registry, type RegistryAccess } from "../../src/services/registry.ts"
import { concatBytes as concat } from "../../src/domain/bytes.ts"
import { startFakeRegistry } from "../support/fake_registry.ts"
import { runTest } from "../support/effect.ts"

/** One implementation under test, with the means to put things in it behind the port's back. */
interface Subject {
  /** The registry that lets anyone in. */
  readonly open: string
  /** A registry that refuses requests without credentials. */
  readonly locked: string
  readonly layer: Layer.Layer<Registry>
  readonly putRawManifest: (repository: string, tag: string, bytes: Uint8Array) => void
  readonly close: () => Promise<void>
}

const work = await Deno.makeTempDir({ prefix: "transient-registry-contract-" })
const noCredentials = `${work}/auth.json`
await Deno.writeTextFile(noCredentials, "{}")

const memorySubject = (): Subject => {
  const state = new MemoryRegistries()
  state.locked.add("locked.example/team/disk")
  return {
    open: "memory.example",
    locked: "locked.example",
    layer: RegistryMemory(state),
    putRawManifest: (repository, tag, bytes) =>
      state.repository(`memory.example/${repository}`).manifests.set(tag, {
        bytes,
        mediaType: MediaType.ociManifest,
      }),
    close: () => Promise.resolve(),
  }
}

const httpSubject = (): Subject => {
  const open = startFakeRegistry()
  const locked = startFakeRegistry({ bearer: { username: "ann", password: "pw" } })
  const environment = ConfigProvider.fromMap(
    new Map([
      ["REGISTRY_AUTH_FILE", noCredentials],
      ["HOME", work],
      ["XDG_RUNTIME_DIR", `${work}/none`],
    ]),
  )
  return {
    open: open.host,
    locked: locked.host,
    layer: RegistryHttp(false).pipe(
      Layer.provide(Layer.merge(NodeContext.layer, FetchHttpClient.layer)),
      Layer.provide(Layer.setConfigProvider(environment)),
      Layer.orDie,
    ),
    putRawManifest: (repository, tag, bytes) =>
      open.manifests.set(`${repository}:${tag}`, { type: MediaType.ociManifest, bytes }),
    close: async () => {
      await open.close()
      await locked.close()
    },
  }
}

const subjects: ReadonlyArray<readonly [string, () => Subject]> = [
  ["RegistryMemory", memorySubject],
  ["RegistryHttp", httpSubject],
]

const repositoryOf = (text: string, access: RegistryAccess) =>
  Effect.gen(function* () {
    const reference = Either.getOrThrow(parseOciReference(text))
    const registry = yield* Registry
    return yield* registry.repository(reference, access)
  })

const collect = <E>(stream: Stream.Stream<Uint8Array, E>) =>
  Effect.map(Stream.runCollect(stream), (chunks) => concat([...Chunk.toReadonlyArray(chunks)]))

/** The tag of the failure of `effect`, and the failure. */
const failureOf = <A, E extends { readonly _tag: string }>(effect: Effect.Effect<A, E>) =>
  Effect.flatMap(
    Effect.either(effect),
    (result) =>
      Either.isLeft(result)
        ? Effect.succeed(result.left)
        : Effect.die(new Error(`expected a failure, got ${JSON.stringify(result.right)}`)),
  )

const blobBytes = new Uint8Array(300_000).map((_, i) => (i * 31) % 251)

const contract = (
  name: string,
  body: (subject: Subject) => Effect.Effect<void, unknown, Registry>,
) => {
  for (const [implementation, make] of subjects) {
    Deno.test(`${implementation}: ${name}`, async () => {
      const subject = make()
      try {
        await runTest(body(subject).pipe(Effect.provide(subject.layer)))
      } finally {
        await subject.close()
      }
    })
  }
}

contract("a blob uploaded is there, whole and from an offset; a manifest put is fetched back", (
  subject,
) =>
  Effect.gen(function* () {
    const repository = yield* repositoryOf(`${subject.open}/team/disk:1`, "push")
    const expected = bytesDigest(blobBytes)
    assert.equal(yield* repository.blobExists(expected), false)
    let progressed = 0
    const digest = yield* repository.uploadBlob([{ _tag: "Bytes", bytes: blobBytes }], {
      expected,
      onProgress: (bytes) => Effect.sync(() => void (progressed += bytes)),
    })
    assert.equal(digest, expected)
    assert.equal(progressed, blobBytes.length)
    assert.equal(yield* repository.blobExists(digest), true)
    const descriptor = { digest, size: blobBytes.length }
    assert.deepEqual(yield* collect(repository.openBlob(descriptor)), blobBytes)
    assert.deepEqual(yield* collect(repository.openBlob(descriptor, 1000)), blobBytes.slice(1000))

    const manifest = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, layers: [] }))
    const manifestDigest = yield* repository.putManifest("1", manifest, MediaType.ociManifest)
    assert.equal(manifestDigest, bytesDigest(manifest))
    const byTag = yield* repository.fetchManifest("1")
    assert.deepEqual(byTag.bytes, manifest)
    assert.equal(byTag.digest, manifestDigest)
    assert.equal(byTag.mediaType, MediaType.ociManifest)
    const byDigest = yield* repository.fetchManifest(manifestDigest)
    assert.deepEqual(byDigest.bytes, manifest)
  }))

contract(
  "a file's content (a containerDisk layer) uploads as the bytes it stands for",
  (subject) =>
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const path = `${work}/${crypto.randomUUID()}`
      const disk = blobBytes.slice(0, 70_001)
      yield* fs.writeFile(path, disk)
      const file = yield* fs.open(path, { flag: "r" })
      const repository = yield* repositoryOf(`${subject.open}/team/disk:1`, "push")
      const content = containerDiskContent(file, disk.length)
      const digest = yield* repository.uploadBlob(content)
      const size = 1024 + 70_144 + 1024
      const uploaded = yield* collect(repository.openBlob({ digest, size }))
      assert.equal(uploaded.length, size)
      assert.equal(digest, bytesDigest(uploaded))
      assert.deepEqual(uploaded.subarray(1024, 1024 + disk.length), disk)
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)),
)

contract(
  "a missing repository, tag, digest or blob is RegistryNotFound saying which",
  (subject) =>
    Effect.gen(function* () {
      const repository = yield* repositoryOf(`${subject.open}/team/disk:1`, "push")
      const manifest = new TextEncoder().encode("{}")
      yield* repository.putManifest("1", manifest, MediaType.ociManifest)
      const missingTag = yield* failureOf(repository.fetchManifest("2"))
      assert.equal(missingTag._tag, "RegistryNotFound")
      assert.deepEqual(
        missingTag._tag === "RegistryNotFound" && [missingTag.what, missingTag.name],
        [
          "tag",
          "2",
        ],
      )
      const digest = `sha256:${"0".repeat(64)}`
      const missingDigest = yield* failureOf(repository.fetchManifest(digest))
      assert.deepEqual(
        missingDigest._tag === "RegistryNotFound" && [missingDigest.what, missingDigest.name],
        ["digest", digest],
      )
      const elsewhere = yield* repositoryOf(`${subject.open}/team/nothing:1`, "pull")
      const missingRepository = yield* failureOf(elsewhere.fetchManifest("1"))
      assert.deepEqual(
        missingRepository._tag === "RegistryNotFound" &&
          [missingRepository.what, missingRepository.name],
        ["repository", "team/nothing"],
      )
      assert.equal(yield* repository.blobExists(digest), false)
      const missingBlob = yield* failureOf(collect(repository.openBlob({ digest, size: 10 })))
      assert.deepEqual(
        missingBlob._tag === "RegistryNotFound" && [missingBlob.what, missingBlob.name],
        ["blob", digest],
      )
    }),
)

contract(
  "bytes that do not hash to the digest asked for are refused and not kept",
  (subject) =>
    Effect.gen(function* () {
      const repository = yield* repositoryOf(`${subject.open}/team/disk:1`, "push")
      const claimed = bytesDigest(new TextEncoder().encode("other bytes"))
      const error = yield* failureOf(
        repository.uploadBlob([{ _tag: "Bytes", bytes: blobBytes }], { expected: claimed }),
      )
      assert.equal(error._tag, "RegistryDigestMismatch")
      assert.equal(error._tag === "RegistryDigestMismatch" && error.actual, bytesDigest(blobBytes))
      assert.equal(yield* repository.blobExists(claimed), false)
      assert.equal(yield* repository.blobExists(bytesDigest(blobBytes)), false)
    }),
)

contract(
  "a manifest larger than a manifest can be is refused",
  (subject) =>
    Effect.gen(function* () {
      subject.putRawManifest("team/huge", "1", new Uint8Array(MAX_MANIFEST_BYTES + 1).fill(32))
      const repository = yield* repositoryOf(`${subject.open}/team/huge:1`, "pull")
      const error = yield* failureOf(repository.fetchManifest("1"))
      assert.equal(error._tag, "RegistryRefused")
      assert.match(
        error.message,
        new RegExp(`a ${MAX_MANIFEST_BYTES + 1}-byte manifest \\(the limit is 4 MiB\\)$`),
      )
    }),
)

contract("a registry that wants credentials that are not there is RegistryUnauthorized", (
  subject,
) =>
  Effect.gen(function* () {
    const pull = yield* repositoryOf(`${subject.locked}/team/disk:1`, "pull")
    const refused = yield* failureOf(pull.fetchManifest("1"))
    assert.equal(refused._tag, "RegistryUnauthorized")
    assert.deepEqual(
      refused._tag === "RegistryUnauthorized" &&
        [refused.registry, refused.repository, refused.action],
      [subject.locked, "team/disk", "pull"],
    )
    const push = yield* repositoryOf(`${subject.locked}/team/disk:1`, "push")
    const upload = yield* failureOf(push.uploadBlob([{ _tag: "Bytes", bytes: blobBytes }]))
    assert.equal(upload._tag, "RegistryUnauthorized")
    assert.equal(upload._tag === "RegistryUnauthorized" && upload.action, "push")
    const exists = yield* failureOf(push.blobExists(bytesDigest(blobBytes)))
    assert.equal(exists._tag, "RegistryUnauthorized")
  }))

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(work, { recursive: true })
  } catch {
    // Already gone.
  }
})
