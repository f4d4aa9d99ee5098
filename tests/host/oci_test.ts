/**
 * The registry formats without a registry: references, plain-HTTP rules, how a manifest is read
 * into where its disk is, the containerDisk tar (read back by GNU tar and by the store's reader),
 * WWW-Authenticate challenges and where credentials are found.
 */
import assert from "node:assert/strict"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import * as FileSystem from "@effect/platform/FileSystem"
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
} from "../../src/domain/oci_manifest.ts"
import {
  formatOciReference,
  isLoopback,
  parseOciReference,
  usesPlainHttp,
} from "../../src/domain/oci_reference.ts"
import { bytesDigest, containerDiskContent } from "../../src/domain/blob_content.ts"
import { contentReader } from "../../src/layers/registry/blob_source.ts"
import { authFiles, describeLookup, findCredential } from "../../src/layers/registry/credentials.ts"
import {
  challengeParameters,
  missingThing,
  nextOffset,
  resumeRange,
  tokenScope,
  uploadChunk,
  uploadedUpTo,
} from "../../src/domain/registry_protocol.ts"
import { tarEntry } from "../../src/layers/store/tar_entry.ts"
import { runFailure, runTest } from "../support/effect.ts"

const right = <A, E>(either: Either.Either<A, E>): A => {
  if (Either.isLeft(either)) throw new Error(`expected Right, got Left ${String(either.left)}`)
  return either.right
}
const left = <A, E>(either: Either.Either<A, E>): E => {
  if (Either.isRight(either)) {
    throw new Error(`expected Left, got Right ${JSON.stringify(either.right)}`)
  }
  return either.left
}

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

const run = async (command: string, args: ReadonlyArray<string>, stdin?: Uint8Array) => {
  const child = new Deno.Command(command, {
    args: [...args],
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn()
  if (stdin) {
    const writer = child.stdin.getWriter()
    await writer.write(stdin)
    await writer.close()
  }
  const output = await child.output()
  return { code: output.code, stdout: new TextDecoder().decode(output.stdout), raw: output.stdout }
}

Deno.test("the containerDisk layer is a tar that GNU tar lists and the store's reader unpacks", async () => {
  const directory = await Deno.makeTempDir({ prefix: "transient-oci-tar-" })
  try {
    const path = `${directory}/image`
    // A size that is not a multiple of 512: the padding has to be right.
    const content = new Uint8Array(70_001).map((_, i) => (i * 7) % 251)
    await Deno.writeFile(path, content)
    const layer = await runTest(Effect.scoped(
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem
        const file = yield* fs.open(path, { flag: "r" })
        const source = contentReader(containerDiskContent(file, content.length))
        const bytes = yield* Stream.runCollect(source.read(0, source.size))
        const whole = new Uint8Array(source.size)
        let offset = 0
        for (const chunk of bytes) {
          whole.set(chunk, offset)
          offset += chunk.length
        }
        // A range from the middle is the same bytes as the whole's.
        const middle = yield* Stream.runCollect(source.read(600, 5000))
        const joined = new Uint8Array(4400)
        let at = 0
        for (const chunk of middle) {
          joined.set(chunk, at)
          at += chunk.length
        }
        assert.deepEqual(joined, whole.subarray(600, 5000))
        return { whole, digest: bytesDigest(whole) }
      }).pipe(Effect.provide(NodeContext.layer)),
    ))
    assert.equal(layer.whole.length % 512, 0)
    const listing = await run("tar", ["-tv", "--numeric-owner", "-f", "-"], layer.whole)
    assert.equal(listing.code, 0)
    const lines = listing.stdout.trim().split("\n")
    assert.match(lines[0] ?? "", /^dr-xr-xr-x 107\/107 +0 .* disk\/$/)
    assert.match(lines[1] ?? "", /^-r--r--r-- 107\/107 +70001 .* disk\/disk\.img$/)
    const extracted = await run("tar", ["-xO", "-f", "-", "disk/disk.img"], layer.whole)
    assert.deepEqual(extracted.raw, content)
    const sha = await run("sha256sum", ["-"], layer.whole)
    assert.equal(layer.digest, `sha256:${sha.stdout.split(" ")[0]}`)

    // Read back by the store's reader; and a second disk/ file is refused.
    const unpacked = await runTest(
      Stream.runCollect(
        tarEntry(isContainerDiskEntry, (problem) => problem, true)(Stream.make(layer.whole)),
      ),
    )
    assert.equal([...unpacked].reduce((n, chunk) => n + chunk.length, 0), content.length)
    await Deno.writeFile(`${directory}/second`, new Uint8Array(10))
    await Deno.mkdir(`${directory}/disk`)
    await Deno.writeFile(`${directory}/disk/a.img`, new Uint8Array(1000))
    await Deno.writeFile(`${directory}/disk/b.img`, new Uint8Array(1000))
    const two = await run("tar", ["-C", directory, "-cf", "-", "disk"])
    const cause = await runFailure(
      Stream.runDrain(
        tarEntry(isContainerDiskEntry, (problem) => problem, true)(Stream.make(two.raw)),
      ),
    )
    assert.match(String(cause), /Several/)
  } finally {
    await Deno.remove(directory, { recursive: true })
  }
})

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

Deno.test("credentials: REGISTRY_AUTH_FILE, then containers auth.json, then Docker's config and helpers", async () => {
  const directory = await Deno.makeTempDir({ prefix: "transient-credentials-" })
  const originalPath = Deno.env.get("PATH") ?? ""
  try {
    const authFile = `${directory}/auth.json`
    const runtime = `${directory}/run`
    const dockerConfig = `${directory}/docker`
    await Deno.mkdir(`${runtime}/containers`, { recursive: true })
    await Deno.mkdir(dockerConfig)
    await Deno.writeTextFile(
      authFile,
      JSON.stringify({ auths: { "https://first.example:5000/v1/": { auth: btoa("ann:pw1") } } }),
    )
    await Deno.writeTextFile(
      `${runtime}/containers/auth.json`,
      JSON.stringify({
        auths: {
          "first.example:5000": { auth: btoa("shadowed:no") },
          "second.example": { auth: btoa("bob:pw:2") },
        },
      }),
    )
    await Deno.writeTextFile(
      `${dockerConfig}/config.json`,
      JSON.stringify({ credHelpers: { "helped.example": "fake" }, credsStore: "fake" }),
    )
    // A credential helper as Docker runs it: the server on stdin, JSON on stdout.
    await Deno.writeTextFile(
      `${directory}/docker-credential-fake`,
      '#!/bin/sh\nread server\ncase "$server" in\n' +
        '  helped.example) echo \'{"Username":"carol","Secret":"pw3"}\' ;;\n' +
        '  stored.example) echo \'{"Username":"dave","Secret":"pw4"}\' ;;\n' +
        '  *) echo "credentials not found in native keychain"; exit 1 ;;\nesac\n',
    )
    await Deno.chmod(`${directory}/docker-credential-fake`, 0o755)
    Deno.env.set("PATH", `${directory}:${originalPath}`)
    const env = {
      REGISTRY_AUTH_FILE: authFile,
      XDG_RUNTIME_DIR: runtime,
      DOCKER_CONFIG: dockerConfig,
    }
    assert.deepEqual(authFiles(env), [
      authFile,
      `${runtime}/containers/auth.json`,
      `${dockerConfig}/config.json`,
    ])
    const find = (registry: string) =>
      runTest(findCredential(registry, env).pipe(Effect.provide(NodeContext.layer)))
    const first = await find("first.example:5000")
    assert.deepEqual(first.credential, { username: "ann", password: "pw1", source: authFile })
    const second = await find("second.example")
    assert.equal(second.credential?.username, "bob")
    assert.equal(second.credential?.password, "pw:2")
    assert.equal((await find("helped.example")).credential?.username, "carol")
    assert.equal((await find("stored.example")).credential?.source, "docker-credential-fake")
    const none = await find("unknown.example")
    assert.equal(none.credential, undefined)
    assert.match(
      describeLookup(none),
      /no credentials for this registry in .*auth\.json, .*docker-credential-fake/,
    )
    const nothing = await runTest(
      findCredential("x.example", { HOME: `${directory}/nowhere` }).pipe(
        Effect.provide(NodeContext.layer),
      ),
    )
    assert.match(describeLookup(nothing), /no REGISTRY_AUTH_FILE/)
  } finally {
    Deno.env.set("PATH", originalPath)
    await Deno.remove(directory, { recursive: true })
  }
})

Deno.test("a build cache's map: entries round-trip, and the chain follows keys and parents", () => {
  const key = (c: string) => c.repeat(64)
  const entry = (k: string, parent: string | undefined) => ({
    key: key(k),
    parent: parent === undefined ? undefined : key(parent),
    text: `step ${k}`,
    digest: `sha256:${k.repeat(64)}`,
    size: 100,
  })
  const entries = [entry("a", undefined), entry("b", "a"), entry("c", "b"), entry("d", "x")]
  const map = cacheManifest({ digest: `sha256:${"e".repeat(64)}`, size: 2 }, entries)
  const read = right(cacheEntries(map as unknown as Manifest))
  assert.deepEqual(read, entries)
  // From the start; from after a local hit; a key on another parent breaks the chain.
  assert.deepEqual(chainIn(read, [key("a"), key("b"), key("c")], 0, undefined).map((e) => e.key), [
    key("a"),
    key("b"),
    key("c"),
  ])
  assert.deepEqual(chainIn(read, [key("a"), key("b"), key("c")], 1, key("a")).length, 2)
  assert.deepEqual(chainIn(read, [key("a"), key("d")], 0, undefined).length, 1)
  assert.deepEqual(chainIn(read, [key("b")], 0, undefined).length, 0)
  assert.match(
    left(cacheEntries(manifest({ layers: [] }))),
    /its manifest is a container image's/,
  )
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
