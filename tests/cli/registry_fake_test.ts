/**
 * `image push` and `image pull NAME,oci=REF` from the command line against the in-process fake
 * registry (tests/support/fake_registry.ts): what goes over the wire — tokens, where credentials
 * are sent, skipped blobs, resumed downloads — and what is refused. The real registry server and
 * skopeo are in tests/e2e/registry_test.ts.
 */
import assert from "node:assert/strict"
import { encodeImageName } from "../../src/domain/image_spec.ts"
import { MediaType } from "../../src/domain/oci_manifest.ts"
import { digestOf, withFakeRegistry } from "../support/fake_registry.ts"
import { lastLine, pullImage, pushImage, storeWithDisk } from "../support/run_transient.ts"
import { identicalImages, storeImages } from "../support/docker_registry.ts"
import { writeAuthFile } from "../support/auth_file.ts"

const sh = async (command: string, ...args: ReadonlyArray<string>) => {
  const output = await new Deno.Command(command, { args: [...args], stderr: "piped" }).output()
  if (!output.success) {
    throw new Error(`${command} ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`)
  }
  return output.stdout
}

const work = await Deno.makeTempDir({ prefix: "transient-registry-fake-" })
const { imagePath, sourceStore } = await storeWithDisk(work, 32, 3)

const withRegistry = withFakeRegistry

withRegistry(
  "push and pull with Bearer tokens; redirected downloads get no credentials and resume when dropped",
  { bearer: { username: "ann", password: "pw" }, redirectBlobs: true, dropAfter: 100_000 },
  async (registry) => {
    const env = {
      REGISTRY_AUTH_FILE: await writeAuthFile(`${work}/bearer.json`, registry.host, "ann", "pw"),
    }
    const reference = `${registry.host}/team/disk:1`
    const pushed = await pushImage("disk", reference, sourceStore, { env })
    assert.equal(pushed.code, 0, pushed.stderr)
    const tagged = registry.manifests.get("team/disk:1")
    assert.ok(tagged, "the manifest is stored under the tag")
    // The pinned reference is the last line on stdout, as a build's path is.
    assert.equal(lastLine(pushed), `${registry.host}/team/disk@${digestOf(tagged.bytes)}`)
    assert.equal(tagged.type, MediaType.ociManifest)
    // The token endpoint got the credential; the registry only ever saw the token.
    const tokens = registry.seen.filter((request) => request.server === "token")
    assert.ok(tokens.some((request) => request.authorization === `Basic ${btoa("ann:pw")}`))
    assert.ok(
      tokens.some((request) =>
        request.path.includes("scope=repository%3Ateam%2Fdisk%3Apull%2Cpush")
      ),
    )
    const registrySide = registry.seen.filter((request) => request.server === "registry")
    assert.ok(registrySide.every((request) => !request.authorization?.startsWith("Basic")))
    const patches = registrySide.filter((request) => request.method === "PATCH").length
    assert.ok(patches >= 2, "the disk and the config were uploaded")

    // Again: every blob is there already, so nothing is uploaded.
    const again = await pushImage("disk", reference, sourceStore, { env })
    assert.equal(again.code, 0, again.stderr)
    assert.equal(lastLine(again), lastLine(pushed))
    assert.match(again.stdout, /The registry has the disk already/)
    assert.equal(registry.seen.filter((request) => request.method === "PATCH").length, patches)

    const store = `${work}/bearer-store`
    const pulled = await pullImage(`copy,oci=${reference}`, store, { env })
    assert.equal(pulled.code, 0, pulled.stderr)
    assert.deepEqual(await storeImages(store), ["copy"])
    assert.ok(await identicalImages(imagePath, `${store}/copy`))
    const cdn = registry.seen.filter((request) => request.server === "cdn")
    assert.ok(cdn.length >= 2, "blobs came from the redirect's host")
    assert.ok(
      cdn.every((request) => request.authorization === null),
      "no credential left the registry's host",
    )
    assert.ok(
      cdn.some((request) => request.range === "bytes=100000-"),
      "the dropped download resumed",
    )

    // Without a credential: refused, saying where it looked; nothing stored.
    const emptyAuth = `${work}/empty.json`
    await Deno.writeTextFile(emptyAuth, "{}")
    const refusedStore = `${work}/refused-store`
    const refused = await pullImage(`copy,oci=${reference}`, refusedStore, {
      env: { REGISTRY_AUTH_FILE: emptyAuth, HOME: work, XDG_RUNTIME_DIR: `${work}/none` },
    })
    assert.equal(refused.code, 1)
    assert.match(
      refused.stderr,
      new RegExp(
        `^error: Registry ${registry.host} refused to let us pull team/disk \\(no credentials for this registry in ${emptyAuth}\\)$`,
        "m",
      ),
    )
    assert.deepEqual(await storeImages(refusedStore), [])
  },
)

withRegistry(
  "an artifact push, and a blob that does not match its digest",
  {},
  async (registry) => {
    const reference = `${registry.host}/team/artifact:2`
    const pushed = await pushImage("disk", reference, sourceStore, { format: "artifact" })
    assert.equal(pushed.code, 0, pushed.stderr)
    const manifest = JSON.parse(
      new TextDecoder().decode(registry.manifests.get("team/artifact:2")!.bytes),
    )
    assert.equal(manifest.artifactType, MediaType.diskArtifact)
    assert.equal(manifest.config.mediaType, MediaType.ociEmpty)
    assert.equal(manifest.layers.length, 1)
    assert.equal(manifest.layers[0].annotations["org.opencontainers.image.title"], "disk.qcow2.zst")
    const layer = registry.blobs.get(manifest.layers[0].digest)!
    assert.deepEqual([...layer.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd], "the layer is zstd")

    const store = `${work}/artifact-store`
    const pulled = await pullImage(`art,oci=${reference}`, store)
    assert.equal(pulled.code, 0, pulled.stderr)
    assert.ok(await identicalImages(imagePath, `${store}/${encodeImageName("art")}`))

    // The registry serves other bytes under the layer's digest.
    const tampered = layer.slice()
    tampered[tampered.length - 1]! ^= 0xff
    registry.blobs.set(manifest.layers[0].digest, tampered)
    const badStore = `${work}/tampered-store`
    const refused = await pullImage(`art,oci=${reference}`, badStore)
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /^error: .*(Checksum mismatch for|could not decompress)/m)
    assert.deepEqual(await storeImages(badStore), [])
  },
)

withRegistry(
  "manifests that carry no disk image are refused with the reason",
  {},
  async (registry) => {
    const put = (repository: string, tag: string, value: unknown) => {
      const bytes = new TextEncoder().encode(JSON.stringify(value))
      registry.manifests.set(`${repository}:${tag}`, { type: MediaType.ociManifest, bytes })
    }
    const blob = (bytes: Uint8Array, mediaType: string) => {
      registry.blobs.set(digestOf(bytes), bytes)
      return { mediaType, digest: digestOf(bytes), size: bytes.length }
    }
    const config = blob(new TextEncoder().encode("{}"), MediaType.ociConfig)
    // A container image whose layer has no disk/ directory.
    await Deno.mkdir(`${work}/nodisk/etc`, { recursive: true })
    await Deno.writeTextFile(`${work}/nodisk/etc/hostname`, "x\n")
    const noDisk = blob(
      await sh("tar", "-C", `${work}/nodisk`, "-cf", "-", "etc"),
      MediaType.ociLayerTar,
    )
    put("app", "1", {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config,
      layers: [noDisk],
    })
    put("chart", "1", {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType: "application/vnd.cncf.helm.chart.v1",
      config: blob(new TextEncoder().encode("{}"), MediaType.ociEmpty),
      layers: [blob(new Uint8Array(10), "application/tar")],
    })
    const store = `${work}/refusals`
    const cases: ReadonlyArray<readonly [string, RegExp]> = [
      [`${registry.host}/app:1`, /is not a disk image: its layer holds no file under disk\/$/m],
      [
        `${registry.host}/chart:1`,
        /is not a disk image: it is an artifact of unknown type 'application\/vnd\.cncf\.helm\.chart\.v1'/,
      ],
      [`${registry.host}/app:2`, /has no tag '2' in that repository$/m],
      [`${registry.host}/nothing:1`, /has no repository 'nothing'$/m],
      [
        `${registry.host}/app@sha256:${"0".repeat(64)}`,
        new RegExp(`has no manifest sha256:${"0".repeat(64)} in that repository$`, "m"),
      ],
    ]
    for (const [reference, expected] of cases) {
      const outcome = await pullImage(`x,oci=${reference}`, store)
      assert.equal(outcome.code, 1, reference)
      assert.match(outcome.stderr, expected, reference)
      assert.equal(
        outcome.stderr.trim().split("\n").filter((line) => line.startsWith("error:")).length,
        1,
      )
    }
    assert.deepEqual(await storeImages(store), [])
  },
)

Deno.test("image push refuses what it cannot push, before any request", async () => {
  const cases: ReadonlyArray<readonly [readonly [string, string], RegExp]> = [
    [["disk", "127.0.0.1:1/Bad:1"], /Invalid registry reference '127\.0\.0\.1:1\/Bad:1'/],
    [["disk", `127.0.0.1:1/a@sha256:${"1".repeat(64)}`], /push to a tag, not a digest/],
    [["missing", "127.0.0.1:1/a:1"], /No image named 'missing' in /],
  ]
  for (const [[image, reference], expected] of cases) {
    const outcome = await pushImage(image, reference, sourceStore)
    assert.equal(outcome.code, 1, `${image} ${reference}`)
    assert.match(outcome.stderr, expected)
  }
})

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(work, { recursive: true })
  } catch {
    // Already gone.
  }
})
