/**
 * ContainerImagesLive on images made by independent tools: `umoci` builds an OCI layout from
 * layer tars GNU tar writes; `skopeo copy` turns it into an oci-archive, a docker-archive, a
 * zstd layout and a push to a local `docker-registry`. Each source must give the same config
 * and layers, and each layer's stream must hash to the config's diff id (the digest of the
 * uncompressed tar): that is what diff ids are.
 */
import assert from "node:assert/strict"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
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
import { RegistryHttp } from "../../src/layers/registry/registry_http.ts"
import {
  ContainerImages,
  type ResolvedContainerImage,
} from "../../src/services/container_images.ts"
import { startDockerRegistry } from "../support/docker_registry.ts"
import { runFailure, runTest } from "../support/effect.ts"
import { tool } from "../support/host_tool.ts"

const work = await Deno.makeTempDir({ prefix: "transient-container-images-" })
const context = `${work}/context`
const registry = await startDockerRegistry(work)
const ARM64: Platform = { os: "linux", architecture: "arm64", variant: undefined }

const sha256 = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`

/** A layer tar made by GNU tar from the files under `root`. */
const layerTar = async (name: string, files: Record<string, Uint8Array | string>) => {
  const root = `${work}/${name}`
  for (const [path, content] of Object.entries(files)) {
    await Deno.mkdir(`${root}/${path.split("/").slice(0, -1).join("/")}`, { recursive: true })
    if (typeof content === "string") await Deno.writeTextFile(`${root}/${path}`, content)
    else await Deno.writeFile(`${root}/${path}`, content)
  }
  await tool(
    "tar",
    "--numeric-owner",
    "--owner=0",
    "--group=0",
    "-C",
    root,
    "-cf",
    `${root}.tar`,
    ".",
  )
  return `${root}.tar`
}

/** Random bytes (several stream chunks' worth), made without a buffer limit of getRandomValues. */
const randomBytes = (size: number) => {
  const bytes = new Uint8Array(size)
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536))
  return bytes
}

const layout = `${context}/layout`
const lower = await layerTar("lower", {
  "etc/hello": "hello\n",
  "usr/share/blob.bin": randomBytes(3 * 1024 * 1024),
})
const upper = await layerTar("upper", { "etc/hello": "hello again\n", "srv/new": "new\n" })
await tool("umoci", "init", "--layout", layout)
for (const [tag, architecture] of [["base", "amd64"], ["arm", "arm64"]] as const) {
  await tool("umoci", "new", "--image", `${layout}:${tag}`)
  await tool("umoci", "raw", "add-layer", "--image", `${layout}:${tag}`, lower)
  await tool("umoci", "raw", "add-layer", "--image", `${layout}:${tag}`, upper)
  await tool(
    "umoci",
    "config",
    "--image",
    `${layout}:${tag}`,
    "--os",
    "linux",
    "--architecture",
    architecture,
    "--config.env",
    "GREETING=hi",
    "--config.workingdir",
    "/srv",
    "--config.cmd",
    "/bin/sh",
  )
}
const skopeo = (from: string, to: string, ...flags: Array<string>) =>
  tool("skopeo", "copy", "--quiet", "--dest-tls-verify=false", ...flags, from, to)
await skopeo(`oci:${layout}:base`, `oci-archive:${context}/image.oci.tar`)
await skopeo(`oci:${layout}:base`, `docker-archive:${context}/image.docker.tar`)
await skopeo(`oci:${layout}:base`, `oci:${context}/zstd:base`, "--dest-compress-format", "zstd")
await skopeo(`oci:${layout}:base`, `docker://${registry.host}/test/base:1`)

/** The layout's index.json entry for `tag`. */
const layoutIndex = JSON.parse(await Deno.readTextFile(`${layout}/index.json`)) as {
  manifests: Array<
    { digest: string; size: number; mediaType: string; annotations: Record<string, string> }
  >
}
const entryOf = (tag: string) => {
  const entry = layoutIndex.manifests.find((m) =>
    m.annotations["org.opencontainers.image.ref.name"] === tag
  )
  assert.ok(entry, `the layout has ${tag}`)
  return entry
}
const blobPath = (dir: string, digest: string) => `${dir}/blobs/sha256/${digest.slice(7)}`
const manifestOf = async (dir: string, digest: string) =>
  JSON.parse(await Deno.readTextFile(blobPath(dir, digest))) as {
    config: { digest: string }
    layers: Array<{ digest: string; mediaType: string }>
  }
const baseManifest = await manifestOf(layout, entryOf("base").digest)
const baseConfig = JSON.parse(
  await Deno.readTextFile(blobPath(layout, baseManifest.config.digest)),
) as {
  rootfs: { diff_ids: Array<string> }
}

// A multi-platform layout, written by hand: an index blob naming both images by platform,
// tagged `all` in index.json.
const multi = `${context}/multi`
await tool("cp", "-r", layout, multi)
const multiIndex = new TextEncoder().encode(JSON.stringify({
  schemaVersion: 2,
  mediaType: "application/vnd.oci.image.index.v1+json",
  manifests: [
    { ...entryOf("arm"), annotations: undefined, platform: { os: "linux", architecture: "arm64" } },
    {
      ...entryOf("base"),
      annotations: undefined,
      platform: { os: "linux", architecture: "amd64" },
    },
  ],
}))
await Deno.writeFile(blobPath(multi, sha256(multiIndex)), multiIndex)
await Deno.writeTextFile(
  `${multi}/index.json`,
  JSON.stringify({
    schemaVersion: 2,
    manifests: [{
      mediaType: "application/vnd.oci.image.index.v1+json",
      digest: sha256(multiIndex),
      size: multiIndex.length,
      annotations: { "org.opencontainers.image.ref.name": "all" },
    }],
  }),
)
await skopeo(`oci:${multi}:all`, `docker://${registry.host}/test/multi:1`, "--all")

const environment = ConfigProvider.fromMap(
  new Map([
    ["REGISTRY_AUTH_FILE", `${work}/no-auth.json`],
    ["HOME", work],
    ["XDG_RUNTIME_DIR", `${work}/none`],
  ]),
)
const live = ContainerImagesLive.pipe(
  Layer.provide(RegistryHttp(false)),
  Layer.provide(Layer.merge(NodeContext.layer, FetchHttpClient.layer)),
  Layer.provide(Layer.setConfigProvider(environment)),
  Layer.orDie,
)

const sourceOf = (text: string) =>
  Either.getOrThrowWith(parseContainerSource(text), (why) => new Error(why))

const resolve = (text: string, platform: Platform = DEFAULT_PLATFORM) =>
  Effect.flatMap(ContainerImages, (images) => images.resolve(sourceOf(text), platform, context))
    .pipe(Effect.provide(live))

/** What a layer's stream gave: the bytes' count and digest, and how it ended. */
const readLayer = (image: ResolvedContainerImage, index: number) =>
  Effect.flatMap(ContainerImages, (images) => {
    const layer = image.layers[index]
    assert.ok(layer)
    const hash = createHash("sha256")
    let bytes = 0
    return images.openLayer(image, layer).pipe(
      Stream.runForEach((chunk) =>
        Effect.sync(() => {
          hash.update(chunk)
          bytes += chunk.length
        })
      ),
      Effect.either,
      Effect.map((ended) => ({ ended, bytes, digest: `sha256:${hash.digest("hex")}` })),
    )
  }).pipe(Effect.provide(live))

const failureOf = (cause: Cause.Cause<ContainerImageError>): ContainerImageError => {
  const failure = Cause.failureOption(cause)
  assert.ok(Option.isSome(failure), Cause.pretty(cause))
  return failure.value
}

const SOURCES = [
  "oci:layout:base",
  "oci-archive:image.oci.tar",
  "docker-archive:image.docker.tar",
  "oci:zstd:base",
  `docker://${registry.host}/test/base:1`,
]

Deno.test("each source gives the image's config and its layers as the uncompressed tars", async () => {
  for (const text of SOURCES) {
    const image = await runTest(resolve(text))
    assert.equal(image.source, text)
    assert.deepEqual(image.diffIds, baseConfig.rootfs.diff_ids, text)
    assert.equal(image.layers.length, 2, text)
    if (text === "oci:zstd:base") {
      assert.ok(image.layers.every((layer) => layer.mediaType.endsWith("+zstd")), text)
    }
    assert.equal(image.config.os, "linux")
    assert.equal(image.config.architecture, "amd64")
    assert.deepEqual(image.config.env?.includes("GREETING=hi"), true, text)
    assert.equal(image.config.workingDir, "/srv", text)
    assert.deepEqual(image.config.cmd, ["/bin/sh"], text)
    for (const index of [0, 1]) {
      const read = await runTest(readLayer(image, index))
      assert.ok(Either.isRight(read.ended), `${text} layer ${index}: ${JSON.stringify(read.ended)}`)
      assert.equal(read.digest, baseConfig.rootfs.diff_ids[index], `${text} layer ${index}`)
    }
  }
  // The tars GNU tar wrote are the layers' contents, byte for byte.
  assert.equal(sha256(await Deno.readFile(lower)), baseConfig.rootfs.diff_ids[0])
  assert.equal(sha256(await Deno.readFile(upper)), baseConfig.rootfs.diff_ids[1])
})

Deno.test("the step key is the image manifest's digest, and the registry's is the layout's", async () => {
  const fromLayout = await runTest(resolve("oci:layout:base"))
  assert.equal(fromLayout.manifestDigest, entryOf("base").digest)
  assert.deepEqual(
    fromLayout.layers.map((layer) => layer.digest),
    baseManifest.layers.map((l) => l.digest),
  )
  const fromRegistry = await runTest(resolve(`docker://${registry.host}/test/base:1`))
  const pinned = await runTest(
    resolve(`docker://${registry.host}/test/base@${fromRegistry.manifestDigest}`),
  )
  assert.equal(pinned.manifestDigest, fromRegistry.manifestDigest)
  assert.equal(pinned.configDigest, fromLayout.configDigest)
  // docker save has no manifest: docker's image ID, the config's digest, stands for it.
  const archived = await runTest(resolve("docker-archive:image.docker.tar"))
  assert.equal(archived.manifestDigest, archived.configDigest)
  assert.equal(archived.configDigest, fromLayout.configDigest)
})

Deno.test("a multi-platform index gives the entry for the platform asked for", async () => {
  for (const text of ["oci:multi:all", "oci:multi", `docker://${registry.host}/test/multi:1`]) {
    const amd = await runTest(resolve(text))
    assert.equal(amd.manifestDigest, entryOf("base").digest, text)
    const arm = await runTest(resolve(text, ARM64))
    assert.equal(arm.manifestDigest, entryOf("arm").digest, text)
    assert.equal(arm.config.architecture, "arm64")
    const read = await runTest(readLayer(arm, 1))
    assert.equal(read.digest, baseConfig.rootfs.diff_ids[1])
  }
})

Deno.test("a platform the index lacks is an error listing those it has", async () => {
  for (const text of ["oci:multi:all", `docker://${registry.host}/test/multi:1`]) {
    const error = failureOf(
      await runFailure(resolve(text, { os: "linux", architecture: "s390x", variant: undefined })),
    )
    assert.equal(error._tag, "ContainerPlatformMissing")
    assert.match(error.message, /linux\/s390x/)
    assert.match(error.message, /linux\/arm64, linux\/amd64/)
    assert.ok(error.message.includes(text), error.message)
  }
})

Deno.test("an image whose config names another platform is refused, naming both", async () => {
  const error = failureOf(await runFailure(resolve("oci:layout:arm")))
  assert.equal(error._tag, "ContainerPlatformMismatch")
  assert.match(error.message, /linux\/arm64.*linux\/amd64/)
})

/** A copy of the layout with one byte of `layer`'s blob flipped, halfway through. */
const corruptLayout = async (name: string, layerIndex: number) => {
  const dir = `${context}/${name}`
  await tool("cp", "-r", layout, dir)
  const digest = baseManifest.layers[layerIndex]?.digest ?? ""
  const path = blobPath(dir, digest)
  const bytes = await Deno.readFile(path)
  const middle = Math.floor(bytes.length / 2)
  bytes[middle] = (bytes[middle] ?? 0) ^ 0xff
  await Deno.writeFile(path, bytes)
  return digest
}

Deno.test("a corrupt layer blob fails its stream, naming the layer and the source", async () => {
  const digest = await corruptLayout("corrupt", 0)
  const image = await runTest(resolve("oci:corrupt:base"))
  const read = await runTest(readLayer(image, 0))
  assert.ok(Either.isLeft(read.ended))
  assert.equal(read.ended.left._tag, "ContainerBlobCorrupt")
  assert.ok(read.ended.left.message.includes(digest), read.ended.left.message)
  assert.ok(read.ended.left.message.includes("oci:corrupt:base"), read.ended.left.message)
  assert.notEqual(read.digest, baseConfig.rootfs.diff_ids[0])
})

Deno.test("a docker-archive layer that is not its diff id fails before its last chunk", async () => {
  const archive = `${context}/corrupt.docker.tar`
  await Deno.copyFile(`${context}/image.docker.tar`, archive)
  const image = await runTest(resolve("docker-archive:corrupt.docker.tar"))
  // The lower layer's random file lies in the middle of its member: flip a byte of it there.
  const bytes = await Deno.readFile(archive)
  const probe = await Deno.readFile(lower)
  const at = indexOf(bytes, probe.subarray(probe.length / 2, probe.length / 2 + 64))
  assert.ok(at > 0)
  bytes[at] = (bytes[at] ?? 0) ^ 0xff
  await Deno.writeFile(archive, bytes)
  const read = await runTest(readLayer(image, 0))
  assert.ok(Either.isLeft(read.ended))
  assert.equal(read.ended.left._tag, "ContainerBlobCorrupt")
  assert.ok(read.ended.left.message.includes(baseConfig.rootfs.diff_ids[0] ?? "?"))
  // Everything but the held-back last chunk went through; never the whole layer.
  assert.ok(read.bytes < probe.length, `${read.bytes} of ${probe.length}`)
  assert.ok(read.bytes > 0)
})

const indexOf = (haystack: Uint8Array, needle: Uint8Array) => {
  const first = needle[0]
  for (let i = haystack.indexOf(first ?? 0); i !== -1; i = haystack.indexOf(first ?? 0, i + 1)) {
    if (needle.every((byte, j) => haystack[i + j] === byte)) return i
  }
  return -1
}

Deno.test("a manifest pinned by a digest it does not have is refused as tampered", async () => {
  const base = await runTest(resolve(`docker://${registry.host}/test/base:1`))
  // The registry's storage: the manifest's revision link names another digest's data.
  const other = entryOf("arm").digest
  const data = `${registry.storage}/docker/registry/v2/blobs/sha256/${
    base.manifestDigest.slice(7, 9)
  }/${base.manifestDigest.slice(7)}/data`
  const armBytes = await Deno.readFile(blobPath(layout, other))
  const original = await Deno.readFile(data)
  await Deno.writeFile(data, armBytes)
  try {
    const error = failureOf(
      await runFailure(resolve(`docker://${registry.host}/test/base@${base.manifestDigest}`)),
    )
    assert.equal(error._tag, "ContainerManifestTampered")
    assert.ok(error.message.includes(base.manifestDigest))
  } finally {
    await Deno.writeFile(data, original)
  }
})

Deno.test("missing images, tags and blobs are errors naming the source", async () => {
  const tag = failureOf(await runFailure(resolve("oci:layout:nope")))
  assert.equal(tag._tag, "ContainerImageNotFound")
  assert.match(tag.message, /'nope'.*base, arm/)
  const file = failureOf(await runFailure(resolve("oci-archive:absent.tar")))
  assert.equal(file._tag, "ContainerImageNotFound")
  assert.match(file.message, /oci-archive:absent\.tar/)
  const registryTag = failureOf(await runFailure(resolve(`docker://${registry.host}/test/base:9`)))
  assert.equal(registryTag._tag, "RegistryNotFound")
})

Deno.test("a symlink leading out of the build context is refused", async () => {
  await tool("cp", "-r", layout, `${work}/outside`)
  await Deno.symlink(`${work}/outside`, `${context}/escape`)
  const error = failureOf(await runFailure(resolve("oci:escape:base")))
  assert.equal(error._tag, "ContainerSourceUnreadable")
  assert.match(error.message, /out of the build context/)
})

/** A layout `name` whose index.json names `manifest` (written as a blob), or is `indexText`. */
const writeLayout = async (name: string, manifest: unknown, indexText?: string) => {
  const dir = `${context}/${name}`
  await tool("cp", "-r", layout, dir)
  const bytes = new TextEncoder().encode(JSON.stringify(manifest))
  await Deno.writeFile(blobPath(dir, sha256(bytes)), bytes)
  await Deno.writeTextFile(
    `${dir}/index.json`,
    indexText ?? JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: sha256(bytes),
        size: bytes.length,
      }],
    }),
  )
}

Deno.test("schema 1 manifests, foreign layers and broken JSON are refused, saying which", async () => {
  await writeLayout("schema1", { schemaVersion: 1, name: "old", fsLayers: [] })
  const schema1 = failureOf(await runFailure(resolve("oci:schema1")))
  assert.equal(schema1._tag, "ContainerMediaTypeUnsupported")
  assert.match(schema1.message, /oci:schema1.*schema 1/i)
  await writeLayout("foreign", {
    ...baseManifest,
    layers: baseManifest.layers.map((layer) => ({
      ...layer,
      mediaType: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    })),
  })
  const foreign = failureOf(await runFailure(resolve("oci:foreign")))
  assert.equal(foreign._tag, "ContainerMediaTypeUnsupported")
  assert.match(foreign.message, /foreign\.diff/)
  await writeLayout("garbled", {}, "{ not json")
  const garbled = failureOf(await runFailure(resolve("oci:garbled")))
  assert.equal(garbled._tag, "ContainerJsonMalformed")
  assert.match(garbled.message, /oci:garbled has a malformed index\.json: it is not JSON/)
})

Deno.test({
  name: "the registry is stopped and the work removed",
  fn: async () => {
    await registry.stop()
    await Deno.remove(work, { recursive: true })
  },
})
