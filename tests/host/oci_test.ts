/**
 * The registry formats against host tools: the containerDisk tar, read back by GNU tar and by
 * the store's reader, and where credentials are found, a Docker credential helper included. The
 * pure rules are in tests/unit/oci_formats_test.ts and registry_protocol_test.ts.
 */
import assert from "node:assert/strict"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as FileSystem from "@effect/platform/FileSystem"
import { isContainerDiskEntry } from "../../src/domain/oci_manifest.ts"
import { bytesDigest, containerDiskContent } from "../../src/domain/blob_content.ts"
import { contentReader } from "../../src/layers/registry/blob_source.ts"
import { authFiles, describeLookup, findCredential } from "../../src/layers/registry/credentials.ts"
import { tarEntry } from "../../src/layers/store/tar_entry.ts"
import { runFailure, runTest } from "../support/effect.ts"
import { runBinary } from "../support/host_tool.ts"

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
    const listing = await runBinary(["tar", "-tv", "--numeric-owner", "-f", "-"], layer.whole)
    assert.equal(listing.code, 0)
    const lines = new TextDecoder().decode(listing.stdout).trim().split("\n")
    assert.match(lines[0] ?? "", /^dr-xr-xr-x 107\/107 +0 .* disk\/$/)
    assert.match(lines[1] ?? "", /^-r--r--r-- 107\/107 +70001 .* disk\/disk\.img$/)
    const extracted = await runBinary(["tar", "-xO", "-f", "-", "disk/disk.img"], layer.whole)
    assert.deepEqual(extracted.stdout, content)
    const sha = await runBinary(["sha256sum", "-"], layer.whole)
    assert.equal(layer.digest, `sha256:${new TextDecoder().decode(sha.stdout).split(" ")[0]}`)

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
    const two = await runBinary(["tar", "-C", directory, "-cf", "-", "disk"])
    const cause = await runFailure(
      Stream.runDrain(
        tarEntry(isContainerDiskEntry, (problem) => problem, true)(Stream.make(two.stdout)),
      ),
    )
    assert.match(String(cause), /Several/)
  } finally {
    await Deno.remove(directory, { recursive: true })
  }
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
