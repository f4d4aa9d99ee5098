/**
 * The ContainerImages port's contract, run against ContainerImagesMemory and against
 * ContainerImagesLive reading OCI layouts written here: the same images given to both resolve
 * to the same config and diff ids, stream the same layer bytes, and fail with the same tags for
 * a missing image, a missing or mismatched platform and a corrupt layer.
 */
import assert from "node:assert/strict"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { parseContainerSource } from "../../src/domain/container_source.ts"
import type { ContainerImageError } from "../../src/domain/errors/container.ts"
import { DEFAULT_PLATFORM, type Platform } from "../../src/domain/platform.ts"
import { ContainerImagesLive } from "../../src/layers/container/container_images_live.ts"
import {
  ContainerImagesMemory,
  type MemoryContainerImage,
  MemoryContainerImages,
} from "../../src/layers/memory/container_images_memory.ts"
import { MemoryRegistries, RegistryMemory } from "../../src/layers/memory/registry_memory.ts"
import { ContainerImages } from "../../src/services/container_images.ts"
import { runFailure, runTest } from "../support/effect.ts"

interface Subject {
  readonly layer: Layer.Layer<ContainerImages>
  readonly contextDir: string
  /** Make `images` (one, or an index's entries) available as `oci:NAME`. */
  readonly add: (name: string, images: ReadonlyArray<MemoryContainerImage>) => Promise<void>
  /** Serve the layer `digest` of `oci:NAME` with one byte changed. */
  readonly corrupt: (name: string, digest: string) => Promise<void>
}

const digestOf = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`
const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value))

const memorySubject = (): Subject => {
  const state = new MemoryContainerImages()
  return {
    layer: ContainerImagesMemory(state),
    contextDir: "/context",
    add: (name, images) => Promise.resolve(void state.images.set(`oci:${name}`, images)),
    corrupt: (_name, digest) => Promise.resolve(void state.corrupt.add(digest)),
  }
}

const work = await Deno.makeTempDir({ prefix: "transient-container-contract-" })

/** An OCI layout written as image-spec says: blobs by digest, index.json naming the manifests. */
const liveSubject = (): Subject => {
  const writeBlob = async (dir: string, bytes: Uint8Array) => {
    const digest = digestOf(bytes)
    await Deno.writeFile(`${dir}/blobs/sha256/${digest.slice(7)}`, bytes)
    return { digest, size: bytes.length }
  }
  return {
    layer: ContainerImagesLive.pipe(
      Layer.provide(RegistryMemory(new MemoryRegistries())),
      Layer.provide(NodeContext.layer),
    ),
    contextDir: work,
    add: async (name, images) => {
      const dir = `${work}/${name}`
      await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true })
      await Deno.writeTextFile(`${dir}/oci-layout`, '{"imageLayoutVersion":"1.0.0"}')
      const entries = []
      for (const image of images) {
        const platform = image.platform ?? DEFAULT_PLATFORM
        const layers = []
        for (const tar of image.layers) {
          layers.push({
            mediaType: "application/vnd.oci.image.layer.v1.tar",
            ...await writeBlob(dir, tar),
          })
        }
        const config = await writeBlob(
          dir,
          json({
            os: platform.os,
            architecture: platform.architecture,
            ...(platform.variant === undefined ? {} : { variant: platform.variant }),
            config: { Env: image.config?.env, WorkingDir: image.config?.workingDir },
            rootfs: { type: "layers", diff_ids: image.layers.map(digestOf) },
          }),
        )
        const manifest = await writeBlob(
          dir,
          json({
            schemaVersion: 2,
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
            layers,
          }),
        )
        entries.push({
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          platform: { os: platform.os, architecture: platform.architecture },
        })
      }
      await Deno.writeFile(`${dir}/index.json`, json({ schemaVersion: 2, manifests: entries }))
    },
    corrupt: async (name, digest) => {
      const path = `${work}/${name}/blobs/sha256/${digest.slice(7)}`
      const bytes = await Deno.readFile(path)
      const middle = Math.floor(bytes.length / 2)
      bytes[middle] = (bytes[middle] ?? 0) ^ 0xff
      await Deno.writeFile(path, bytes)
    },
  }
}

const ARM64: Platform = { os: "linux", architecture: "arm64", variant: undefined }
const tarOf = (length: number, seed: number) =>
  Uint8Array.from({ length }, (_, i) => (i * 13 + seed) % 256)
const LOWER = tarOf(300_000, 1)
const UPPER = tarOf(5_000, 2)
const IMAGE: MemoryContainerImage = {
  config: { env: ["A=1"], workingDir: "/srv" },
  layers: [LOWER, UPPER],
}

const failureOf = (cause: Cause.Cause<ContainerImageError>): ContainerImageError => {
  const failure = Cause.failureOption(cause)
  assert.ok(Option.isSome(failure), Cause.pretty(cause))
  return failure.value
}

for (const [name, makeSubject] of [["Memory", memorySubject], ["Live", liveSubject]] as const) {
  const subject = makeSubject()
  const resolve = (text: string, platform: Platform = DEFAULT_PLATFORM) =>
    Effect.flatMap(ContainerImages, (images) =>
      images.resolve(
        Either.getOrThrow(parseContainerSource(text)),
        platform,
        subject.contextDir,
      )).pipe(Effect.provide(subject.layer))
  const read = (text: string, index: number) =>
    Effect.gen(function* () {
      const images = yield* ContainerImages
      const image = yield* resolve(text)
      const layer = image.layers[index]
      assert.ok(layer)
      const seen: Array<number> = []
      const ended = yield* images.openLayer(image, layer).pipe(
        Stream.runForEach((chunk) => Effect.sync(() => seen.push(...chunk))),
        Effect.either,
      )
      return { ended, bytes: Uint8Array.from(seen), digest: layer.digest }
    }).pipe(Effect.provide(subject.layer))

  await subject.add("one", [IMAGE])
  await subject.add("both", [{ ...IMAGE, platform: ARM64 }, IMAGE])
  await subject.add("arm", [{ ...IMAGE, platform: ARM64 }])
  await subject.add("broken", [IMAGE])

  Deno.test(`${name}: an image resolves to its config and diff ids, its layers to their bytes`, async () => {
    const image = await runTest(resolve("oci:one"))
    assert.equal(image.source, "oci:one")
    assert.deepEqual(image.diffIds, [digestOf(LOWER), digestOf(UPPER)])
    assert.equal(image.config.os, "linux")
    assert.equal(image.config.architecture, "amd64")
    assert.deepEqual(image.config.env, ["A=1"])
    assert.equal(image.config.workingDir, "/srv")
    assert.match(image.manifestDigest, /^sha256:[0-9a-f]{64}$/)
    assert.match(image.configDigest, /^sha256:[0-9a-f]{64}$/)
    for (const [index, tar] of [LOWER, UPPER].entries()) {
      const got = await runTest(read("oci:one", index))
      assert.ok(Either.isRight(got.ended))
      assert.deepEqual(got.bytes, tar)
    }
  })

  Deno.test(`${name}: an index gives the entry for the platform; a missing one lists those present`, async () => {
    const arm = await runTest(resolve("oci:both", ARM64))
    assert.equal(arm.config.architecture, "arm64")
    const amd = await runTest(resolve("oci:both"))
    assert.notEqual(amd.manifestDigest, arm.manifestDigest)
    const missing = failureOf(
      await runFailure(
        resolve("oci:both", { os: "linux", architecture: "riscv64", variant: undefined }),
      ),
    )
    assert.equal(missing._tag, "ContainerPlatformMissing")
    assert.match(missing.message, /oci:both.*linux\/riscv64.*linux\/arm64, linux\/amd64/)
  })

  Deno.test(`${name}: an image for another platform is refused`, async () => {
    const error = failureOf(await runFailure(resolve("oci:arm")))
    assert.equal(error._tag, "ContainerPlatformMismatch")
  })

  Deno.test(`${name}: a missing image is not found`, async () => {
    const error = failureOf(await runFailure(resolve("oci:nothing")))
    assert.equal(error._tag, "ContainerImageNotFound")
    assert.match(error.message, /oci:nothing/)
  })

  Deno.test(`${name}: a corrupt layer fails its stream before the layer is complete`, async () => {
    await subject.corrupt("broken", digestOf(LOWER))
    const got = await runTest(read("oci:broken", 0))
    assert.ok(Either.isLeft(got.ended))
    assert.equal(got.ended.left._tag, "ContainerBlobCorrupt")
    assert.ok(got.ended.left.message.includes(digestOf(LOWER)))
    assert.ok(got.bytes.length < LOWER.length)
  })
}

Deno.test({
  name: "the layouts are removed",
  fn: () => Deno.remove(work, { recursive: true }),
})
