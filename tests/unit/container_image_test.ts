/**
 * The pure parts of container image sources: configs read and checked against a platform, layer
 * media types taken with their compression, a `docker save` manifest.json's one image, and the
 * members of a tar found by reading its headers only.
 */
import assert from "node:assert/strict"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import {
  decodeJson,
  diffIdsOf,
  DockerArchiveManifest,
  ImageConfig,
  layerCompression,
  onlyArchivedImage,
  platformMismatch,
  recordedConfig,
} from "../../src/domain/container_image.ts"
import { indexTarMembers } from "../../src/layers/container/tar_members.ts"
import { runFailure, runTest } from "../support/effect.ts"

const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value))
const DIFF = `sha256:${"a".repeat(64)}`

const config = (fields: Record<string, unknown>) =>
  Either.getOrThrow(
    decodeJson(ImageConfig)(encode({
      os: "linux",
      architecture: "amd64",
      rootfs: { type: "layers", diff_ids: [DIFF] },
      ...fields,
    })),
  )

Deno.test("a config is recorded with what a user may want to see again, nulls left out", () => {
  const recorded = recordedConfig(config({
    created: "2026-01-01T00:00:00Z",
    config: {
      Env: ["PATH=/bin"],
      WorkingDir: "",
      Entrypoint: null,
      Cmd: ["sh"],
      Labels: { a: "b" },
    },
  }))
  assert.deepEqual(recorded, {
    os: "linux",
    architecture: "amd64",
    env: ["PATH=/bin"],
    cmd: ["sh"],
    labels: { a: "b" },
    created: "2026-01-01T00:00:00Z",
  })
  assert.deepEqual(recordedConfig(config({ config: null })), { os: "linux", architecture: "amd64" })
})

Deno.test("a config that is not one says why", () => {
  assert.ok(Either.isLeft(decodeJson(ImageConfig)(encode({ os: "linux" }))))
  assert.deepEqual(
    decodeJson(ImageConfig)(new TextEncoder().encode("{not json")),
    Either.left("it is not JSON"),
  )
  assert.ok(Either.isLeft(diffIdsOf(config({ rootfs: { type: "layers", diff_ids: ["md5:x"] } }))))
  assert.deepEqual(diffIdsOf(config({})), Either.right([DIFF]))
})

Deno.test("a config serves the platform it names, spelt either way, and no other", () => {
  const amd64 = { os: "linux", architecture: "amd64", variant: undefined }
  assert.equal(platformMismatch(config({ architecture: "x86_64" }), amd64), undefined)
  assert.deepEqual(platformMismatch(config({ architecture: "arm64" }), amd64), {
    wanted: "linux/amd64",
    configured: "linux/arm64",
  })
  const armv6 = { os: "linux", architecture: "arm", variant: "v6" }
  assert.deepEqual(platformMismatch(config({ architecture: "arm", variant: "v7" }), armv6), {
    wanted: "linux/arm/v6",
    configured: "linux/arm/v7",
  })
})

Deno.test("layer media types say their compression; foreign layers are none", () => {
  assert.equal(layerCompression("application/vnd.oci.image.layer.v1.tar"), "none")
  assert.equal(layerCompression("application/vnd.oci.image.layer.v1.tar+gzip"), "gzip")
  assert.equal(layerCompression("application/vnd.oci.image.layer.v1.tar+zstd"), "zstd")
  assert.equal(layerCompression("application/vnd.docker.image.rootfs.diff.tar.gzip"), "gzip")
  assert.equal(
    layerCompression("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
    undefined,
  )
})

Deno.test("a docker save manifest.json must list exactly one image", () => {
  const entry = { Config: "c.json", RepoTags: null, Layers: ["a/layer.tar"] }
  const decoded = Either.getOrThrow(decodeJson(DockerArchiveManifest)(encode([entry])))
  assert.deepEqual(onlyArchivedImage(decoded), Either.right(entry))
  assert.ok(Either.isLeft(onlyArchivedImage([])))
  const several = onlyArchivedImage([entry, entry])
  assert.ok(Either.isLeft(several) && /2 images/.test(several.left))
})

/** A ustar header for `name` of `size` bytes and tar type `type`. */
const header = (name: string, size: number, type = "0", linkName = "") => {
  const block = new Uint8Array(512)
  const put = (text: string, at: number) => block.set(new TextEncoder().encode(text), at)
  put(name, 0)
  put("0000644\0", 100)
  put(size.toString(8).padStart(11, "0") + "\0", 124)
  put(type, 156)
  put(linkName, 157)
  put("ustar\0", 257)
  put("00", 263)
  put("        ", 148)
  const sum = block.reduce((total, byte) => total + byte, 0)
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148)
  return block
}
const padded = (bytes: Uint8Array) => {
  const out = new Uint8Array(Math.ceil(bytes.length / 512) * 512)
  out.set(bytes)
  return out
}
const archive = (...parts: Array<Uint8Array>) => {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0) + 1024)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}
const reader = (bytes: Uint8Array) => (offset: number, length: number) =>
  Effect.succeed(bytes.subarray(offset, offset + length))

Deno.test("tar members are found by their headers, with pax long names and links", async () => {
  const longName = `blobs/sha256/${"b".repeat(120)}`
  const pax = new TextEncoder().encode(`${longName.length + 10} path=${longName}\n`)
  const bytes = archive(
    header("./index.json", 5),
    padded(new TextEncoder().encode("hello")),
    header("pax", pax.length, "x"),
    padded(pax),
    header("ignored", 3),
    padded(new TextEncoder().encode("abc")),
    header("c/layer.tar", 0, "2", "../" + "x.tar"),
  )
  const members = await runTest(indexTarMembers(reader(bytes), bytes.length))
  assert.deepEqual([...members.keys()], ["index.json", longName, "c/layer.tar"])
  const index = members.get("index.json")
  assert.equal(index?.offset, 512)
  assert.equal(new TextDecoder().decode(bytes.subarray(512, 512 + (index?.size ?? 0))), "hello")
  assert.equal(members.get(longName)?.offset, 512 * 5)
  assert.equal(members.get("c/layer.tar")?.linkName, "../x.tar")
})

Deno.test("a tar that is cut short or is not a tar is refused", async () => {
  const whole = archive(header("a", 2000), padded(new Uint8Array(2000)))
  const cut = whole.subarray(0, 1024)
  assert.match(String(await runFailure(indexTarMembers(reader(cut), cut.length))), /ends inside/)
  const noise = new Uint8Array(1024).fill(7)
  assert.match(
    String(await runFailure(indexTarMembers(reader(noise), noise.length))),
    /no valid tar header/,
  )
})
