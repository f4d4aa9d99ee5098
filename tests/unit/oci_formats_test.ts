/**
 * The OCI formats, pure: references and the plain-HTTP rule, `oci=` image specs, how a manifest
 * or an index is read into where its disk is, containerDisk entry names and a build cache's map.
 */
import assert from "node:assert/strict"
import { parseImageSpec } from "../../src/domain/image_spec.ts"
import {
  cacheEntries,
  cacheManifest,
  chainIn,
  chooseFromIndex,
  diskLayout,
  isContainerDiskEntry,
  type Manifest,
  MediaType,
  remoteRun,
} from "../../src/domain/oci_manifest.ts"
import {
  formatOciReference,
  isLoopback,
  parseOciReference,
  usesPlainHttp,
} from "../../src/domain/oci_reference.ts"
import { left, right } from "../support/either.ts"

Deno.test("OCI references: registry, repository, tag and digest, as Docker reads them", () => {
  const digest = `sha256:${"ab".repeat(32)}`
  assert.deepEqual(right(parseOciReference("127.0.0.1:5000/team/disk:v1")), {
    registry: "127.0.0.1:5000",
    repository: "team/disk",
    tag: "v1",
    digest: undefined,
  })
  assert.deepEqual(right(parseOciReference(`quay.io/containerdisks/fedora@${digest}`)), {
    registry: "quay.io",
    repository: "containerdisks/fedora",
    tag: undefined,
    digest,
  })
  // No registry: Docker Hub, official images under library/, the tag defaults to latest.
  assert.deepEqual(right(parseOciReference("alpine")), {
    registry: "docker.io",
    repository: "library/alpine",
    tag: "latest",
    digest: undefined,
  })
  assert.equal(right(parseOciReference("localhost/disk")).registry, "localhost")
  assert.equal(right(parseOciReference("team/disk:1")).repository, "team/disk")
  assert.equal(
    formatOciReference(right(parseOciReference("localhost:5000/a/b:c"))),
    "localhost:5000/a/b:c",
  )
  assert.match(left(parseOciReference("localhost:5000/Upper/case:1")), /'Upper' is not/)
  assert.match(left(parseOciReference("localhost:5000/a@sha256:12")), /not a sha256:HEX/)
  assert.match(left(parseOciReference("localhost:5000/a:bad tag")), /not a valid tag/)
  assert.match(left(parseOciReference("localhost:5000/")), /no repository/)
})

Deno.test("plain HTTP for loopback, listed registries and --plain-http only", () => {
  for (const host of ["localhost:5000", "127.0.0.1:5000", "127.8.9.1", "[::1]:5000"]) {
    assert.ok(isLoopback(host), host)
    assert.ok(usesPlainHttp(host, [], false), host)
  }
  assert.equal(usesPlainHttp("registry.lan:5000", [], false), false)
  assert.equal(usesPlainHttp("registry.lan:5000", ["other:1", " registry.lan:5000"], false), true)
  assert.equal(usesPlainHttp("registry.lan:5000", ["registry.lan"], false), false)
  assert.equal(usesPlainHttp("ghcr.io", [], true), true)
  assert.equal(isLoopback("127.example.com"), false)
})

Deno.test("image specs take oci=REF, and refuse ,sha256= with it", () => {
  const spec = right(parseImageSpec("base,oci=127.0.0.1:5000/disks/base:1"))
  assert.equal(spec.source._tag, "Oci")
  assert.match(
    left(parseImageSpec("base,oci=127.0.0.1:5000/Bad")).message,
    /Invalid registry reference '127.0.0.1:5000\/Bad'/,
  )
  assert.match(
    left(parseImageSpec(`base,oci=localhost/a:1,sha256=${"0".repeat(64)}`)).message,
    /REF@sha256:HEX/,
  )
})

const blob = (mediaType: string, digestByte = "a", annotations?: Record<string, string>) => ({
  mediaType,
  digest: `sha256:${digestByte.repeat(64)}`,
  size: 10,
  ...(annotations ? { annotations } : {}),
})

const manifest = (fields: Partial<Manifest>): Manifest => ({
  schemaVersion: 2,
  config: blob(MediaType.ociConfig),
  layers: [],
  ...fields,
})

Deno.test("a manifest's disk: a containerDisk's tar layers last first, or an artifact's layer", () => {
  const layers = [
    blob("application/vnd.oci.image.layer.v1.tar+gzip", "1"),
    blob("application/vnd.docker.image.rootfs.diff.tar.gzip", "2"),
  ]
  const image = right(diskLayout(manifest({ layers })))
  assert.equal(image._tag, "ContainerDisk")
  assert.deepEqual(image._tag === "ContainerDisk" && image.layers.map((l) => l.digest[7]), [
    "2",
    "1",
  ])
  const ours = right(diskLayout(manifest({
    artifactType: MediaType.diskArtifact,
    config: blob(MediaType.ociEmpty),
    layers: [blob(MediaType.diskLayer, "3")],
  })))
  assert.equal(ours._tag, "Artifact")
  // Another tool's artifact: known by its layer's title.
  const titled = right(diskLayout(manifest({
    artifactType: "application/x-other",
    config: blob(MediaType.ociEmpty),
    layers: [blob("application/zstd", "4", { "org.opencontainers.image.title": "m.qcow2.zst" })],
  })))
  assert.equal(titled._tag, "Artifact")
  assert.match(
    left(diskLayout(manifest({
      artifactType: "application/vnd.cncf.helm.chart",
      config: blob(MediaType.ociEmpty),
      layers: [blob("application/tar", "5")],
    }))),
    /unknown type 'application\/vnd.cncf.helm.chart'/,
  )
  assert.match(
    left(diskLayout(manifest({
      artifactType: MediaType.diskArtifact,
      layers: [blob(MediaType.diskLayer, "6"), blob(MediaType.diskLayer, "7")],
    }))),
    /2 layers/,
  )
  assert.match(left(diskLayout(manifest({ layers: [] }))), /no layers/)
  assert.match(
    left(diskLayout(manifest({ layers: [{ ...blob(MediaType.ociLayerTar), digest: "md5:x" }] }))),
    /digest 'md5:x'/,
  )
})

Deno.test("an index: this host's platform, else its only manifest", () => {
  const entry = (architecture: string, byte: string) => ({
    ...blob(MediaType.ociManifest, byte),
    platform: { architecture, os: "linux" },
  })
  const chosen = right(chooseFromIndex({
    schemaVersion: 2,
    manifests: [entry("arm64", "1"), entry("amd64", "2")],
  }))
  assert.equal(chosen.digest[7], "2")
  assert.equal(
    right(chooseFromIndex({ schemaVersion: 2, manifests: [entry("arm64", "3")] })).digest[7],
    "3",
  )
  assert.match(
    left(
      chooseFromIndex({ schemaVersion: 2, manifests: [entry("arm64", "1"), entry("s390x", "2")] }),
    ),
    /no linux\/amd64/,
  )
})

Deno.test("containerDisk entries: one file directly under disk/", () => {
  for (const path of ["disk/disk.img", "./disk/x.qcow2", "/disk/a"]) {
    assert.ok(isContainerDiskEntry(path))
  }
  for (const path of ["disk/", "disk/sub/x", "other/disk.img", "diskette"]) {
    assert.equal(isContainerDiskEntry(path), false, path)
  }
})

Deno.test("a build cache's map: entries round-trip, and the chain follows keys, parents and digests", () => {
  const key = (c: string) => c.repeat(64)
  const digestOf = (c: string) => `sha256:${c.repeat(64)}`
  const entry = (k: string, parent: string | undefined) => ({
    key: key(k),
    parent: parent === undefined ? undefined : key(parent),
    parentDigest: parent === undefined ? undefined : digestOf(parent),
    text: `step ${k}`,
    digest: digestOf(k),
    size: 100,
  })
  const entries = [entry("a", undefined), entry("b", "a"), entry("c", "b"), entry("d", "x")]
  const map = cacheManifest({ digest: `sha256:${"e".repeat(64)}`, size: 2 }, entries)
  const read = right(cacheEntries(map as unknown as Manifest))
  assert.deepEqual(read, entries)
  const a = { key: key("a"), digest: digestOf("a") }
  // From the start; from after a local hit; a key on another parent breaks the chain.
  assert.deepEqual(
    chainIn(read, [key("a"), key("b"), key("c")], 0, undefined, undefined).map((e) => e.key),
    [key("a"), key("b"), key("c")],
  )
  assert.deepEqual(chainIn(read, [key("a"), key("b"), key("c")], 1, a, undefined).length, 2)
  assert.deepEqual(chainIn(read, [key("a"), key("d")], 0, undefined, undefined).length, 1)
  assert.deepEqual(chainIn(read, [key("b")], 0, undefined, undefined).length, 0)
  // The local layer under it has other bytes: the entry was not made on it.
  const otherA = { key: key("a"), digest: digestOf("f") }
  assert.deepEqual(chainIn(read, [key("a"), key("b")], 1, otherA, undefined).length, 0)
  // A first layer made on another base, or on none when this build has one.
  assert.deepEqual(chainIn(read, [key("a")], 0, undefined, digestOf("0")).length, 0)
  assert.match(
    left(cacheEntries(manifest({ layers: [] }))),
    /its manifest is a container image's/,
  )
})

Deno.test("a build cache run extends the local chain; where local bytes differ, from below", () => {
  const key = (c: string) => c.repeat(64)
  const digestOf = (c: string) => `sha256:${c.repeat(64)}`
  const entry = (k: string, parent: string | undefined, bytes = k) => ({
    key: key(k),
    parent: parent === undefined ? undefined : key(parent),
    parentDigest: parent === undefined ? undefined : digestOf(parent),
    text: `step ${k}`,
    digest: digestOf(bytes),
    size: 100,
  })
  const remote = [entry("a", undefined), entry("b", "a"), entry("c", "b")]
  const keys = [key("a"), key("b"), key("c")]
  const local = (...cs: ReadonlyArray<string>) =>
    cs.map((c, index) => ({ key: keys[index] ?? "", digest: digestOf(c) }))
  const run = (mine: ReadonlyArray<{ key: string; digest: string }>) => {
    const found = remoteRun(remote, keys, mine, undefined)
    return { from: found.from, keys: found.chain.map((e) => e.key.slice(0, 1)) }
  }
  assert.deepEqual(run([]), { from: 0, keys: ["a", "b", "c"] })
  // The same bytes here: only what is missing.
  assert.deepEqual(run(local("a")), { from: 1, keys: ["b", "c"] })
  assert.deepEqual(run(local("a", "b")), { from: 2, keys: ["c"] })
  // Another machine's first layer: everything from the registry, the local ones replaced.
  assert.deepEqual(run(local("x")), { from: 0, keys: ["a", "b", "c"] })
  assert.deepEqual(run(local("a", "y")), { from: 1, keys: ["b", "c"] })
  // Nothing longer than what is here: nothing.
  assert.deepEqual(run(local("a", "b", "c")), { from: 3, keys: [] })
})
