/**
 * `image pull NAME,oci=REF` from the command line against a hostile registry on 127.0.0.1
 * (tests/support/fake_registry.ts): one that never answers, one whose blob stops coming, one
 * that sends a manifest or a token without end. Each fails within TRANSIENT_NETWORK_TIMEOUT
 * (1 s here; each request is tried 4 times, each blob download resumed 3 times) or at its cap,
 * with one line that names the registry and what was being read.
 */
import assert from "node:assert/strict"
import { withFakeRegistry } from "../support/fake_registry.ts"
import { MAIN, pullImage, pushImage, ROOT, storeWithDisk } from "../support/run_transient.ts"
import { storeImages } from "../support/docker_registry.ts"
import { writeAuthFile } from "../support/auth_file.ts"

const work = await Deno.makeTempDir({ prefix: "transient-registry-hostile-" })
const { sourceStore } = await storeWithDisk(work, 8, 1)

/** One second without an answer or a byte is a stall. */
const env = { TRANSIENT_NETWORK_TIMEOUT: "1" }
const SILENCE = "(TRANSIENT_NETWORK_TIMEOUT sets how long to wait)"

const withRegistry = withFakeRegistry

/** `promise`'s value and how long it took, in seconds. */
const timed = async <A>(promise: () => Promise<A>) => {
  const start = performance.now()
  const value = await promise()
  return { value, seconds: (performance.now() - start) / 1000 }
}

const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

withRegistry(
  "a registry that never answers the manifest request fails the pull within the timeout",
  {},
  async (registry) => {
    registry.hostile.silentManifests = true
    const reference = `${registry.host}/team/disk:1`
    const { value: pulled, seconds } = await timed(() =>
      pullImage(`x,oci=${reference}`, `${work}/silent-store`, { env })
    )
    assert.equal(pulled.code, 1, pulled.stderr)
    assert.match(
      pulled.stderr,
      new RegExp(
        `^error: Registry ${escaped(registry.host)} went silent when asked to fetch the manifest ` +
          `of ${escaped(reference)}: no answer for 1 s ${escaped(SILENCE)}$`,
        "m",
      ),
    )
    const asked = registry.seen.filter((request) => request.path.includes("/manifests/"))
    assert.equal(asked.length, 4, "the request was tried again, a bounded number of times")
    // 4 tries of 1 s, the pauses between them, and the CLI's start.
    assert.ok(seconds < 15, `failed after ${seconds} s`)
    assert.deepEqual(await storeImages(`${work}/silent-store`), [])
  },
)

withRegistry(
  "a blob that stops after 1000 bytes is resumed, then fails the pull within the timeout",
  {},
  async (registry) => {
    const reference = `${registry.host}/team/disk:1`
    const pushed = await pushImage("disk", reference, sourceStore)
    assert.equal(pushed.code, 0, pushed.stderr)
    registry.hostile.blobStallsAfter = 1000
    const { value: pulled, seconds } = await timed(() =>
      pullImage(`x,oci=${reference}`, `${work}/stalled-store`, { env })
    )
    assert.equal(pulled.code, 1, pulled.stderr)
    assert.match(
      pulled.stderr,
      new RegExp(
        `^error: Registry ${escaped(registry.host)} went silent when asked to download blob ` +
          `sha256:[0-9a-f]{64} of ${escaped(reference)}: no byte for 1 s ${escaped(SILENCE)}$`,
        "m",
      ),
    )
    const ranges = registry.seen.flatMap((request) =>
      request.method === "GET" && request.path.includes("/blobs/") ? [request.range] : []
    )
    // The disk's blob: from the start, then resumed after each 1000 bytes, three times.
    assert.deepEqual(ranges.slice(-4), [null, "bytes=1000-", "bytes=2000-", "bytes=3000-"])
    assert.ok(seconds < 15, `failed after ${seconds} s`)
    assert.deepEqual(await storeImages(`${work}/stalled-store`), [])
  },
)

/** The peak resident memory of the process `argv` ran, from /usr/bin/time -v, in bytes. */
const peakMemory = async (
  argv: ReadonlyArray<string>,
  variables: Record<string, string>,
) => {
  const output = await new Deno.Command("/usr/bin/time", {
    args: ["-v", ...argv],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...variables },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output()
  const stderr = new TextDecoder().decode(output.stderr)
  const kilobytes = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr)?.[1]
  assert.ok(kilobytes !== undefined, stderr)
  return { code: output.code, stderr, bytes: Number(kilobytes) * 1024 }
}

withRegistry(
  "a 256 MiB manifest sent without a length is refused at its cap, in bounded memory",
  {},
  async (registry) => {
    // Larger than the memory bound: read whole, it could not stay under it.
    registry.hostile.unannouncedManifestBytes = 256 * 1024 * 1024
    const reference = `${registry.host}/team/disk:1`
    const pulled = await peakMemory(
      [
        Deno.execPath(),
        "run",
        "-A",
        MAIN,
        "image",
        "pull",
        `x,oci=${reference}`,
        "--image-backend",
        `${work}/huge-store`,
      ],
      env,
    )
    assert.equal(pulled.code, 1, pulled.stderr)
    assert.match(
      pulled.stderr,
      new RegExp(
        `^error: Registry ${escaped(registry.host)} failed to fetch the manifest of ` +
          `${escaped(reference)}: a manifest sent without a length ran past the 4 MiB limit$`,
        "m",
      ),
    )
    assert.ok(pulled.bytes < 250 * 1024 * 1024, `peak memory ${pulled.bytes} bytes`)
    console.log(`peak memory: ${(pulled.bytes / 1024 / 1024).toFixed(0)} MB`)
  },
)

withRegistry(
  "a token endpoint that sends without end is refused at its cap",
  { bearer: { username: "ann", password: "pw" } },
  async (registry) => {
    registry.hostile.endlessToken = true
    const reference = `${registry.host}/team/disk:1`
    const pulled = await pullImage(`x,oci=${reference}`, `${work}/token-store`, {
      env: {
        ...env,
        REGISTRY_AUTH_FILE: await writeAuthFile(`${work}/auth.json`, registry.host, "ann", "pw"),
      },
    })
    assert.equal(pulled.code, 1, pulled.stderr)
    assert.match(
      pulled.stderr,
      new RegExp(
        `^error: Registry ${
          escaped(registry.host)
        } failed to issue a token at http://127\\.0\\.0\\.1:\\d+/token: ` +
          `its answer ran past the 1 MiB limit$`,
        "m",
      ),
    )
  },
)

Deno.test("TRANSIENT_NETWORK_TIMEOUT that is no number of seconds is refused", async () => {
  const pulled = await pullImage(`x,oci=127.0.0.1:1/team/disk:1`, `${work}/invalid-store`, {
    env: { TRANSIENT_NETWORK_TIMEOUT: "soon" },
  })
  assert.equal(pulled.code, 1, pulled.stderr)
  assert.match(
    pulled.stderr,
    /^error: TRANSIENT_NETWORK_TIMEOUT must be a number of seconds above 0 \(got 'soon'\)$/m,
  )
})

Deno.test("an http= source that never answers, or stops after 1000 bytes, fails within the timeout", async () => {
  let release = () => {}
  const closed = new Promise<void>((resolve) => release = resolve)
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      if (new URL(request.url).pathname === "/silent.img") {
        await closed
        return new Response(null, { status: 503 })
      }
      return new Response(
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new Uint8Array(1000))
            closed.then(() => controller.error(new Error("closed")))
          },
        }),
        { headers: { "content-length": "10000" } },
      )
    },
  )
  const base = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`
  try {
    const cases = [
      [`${base}/silent.img`, `Cannot download ${base}/silent.img: no answer for 1 s`],
      [`${base}/stalled.img`, `Cannot fetch ${base}/stalled.img: no byte for 1 s`],
    ] as const
    for (const [url, expected] of cases) {
      const { value: pulled, seconds } = await timed(() =>
        pullImage(`x,http=${url}`, `${work}/http-store`, { env })
      )
      assert.equal(pulled.code, 1, pulled.stderr)
      assert.match(
        pulled.stderr,
        new RegExp(`^error: ${escaped(expected)} ${escaped(SILENCE)}$`, "m"),
      )
      assert.ok(seconds < 10, `failed after ${seconds} s`)
    }
    assert.deepEqual(await storeImages(`${work}/http-store`), [])
  } finally {
    release()
    await server.shutdown()
  }
})

withRegistry(
  "a containerDisk manifest of 10,000 layers is refused at once, no layer fetched",
  {},
  async (registry) => {
    const layer = (n: number) => ({
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      digest: `sha256:${n.toString(16).padStart(64, "0")}`,
      size: 1024,
    })
    const manifest = new TextEncoder().encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: `sha256:${"c".repeat(64)}`,
        size: 2,
      },
      layers: Array.from({ length: 10_000 }, (_, n) => layer(n)),
    }))
    registry.manifests.set("team/many:1", {
      type: "application/vnd.oci.image.manifest.v1+json",
      bytes: manifest,
    })
    const reference = `${registry.host}/team/many:1`
    const { value: pulled, seconds } = await timed(() =>
      pullImage(`x,oci=${reference}`, `${work}/many-store`, { env })
    )
    assert.equal(pulled.code, 1, pulled.stderr)
    assert.match(pulled.stderr, /it has 10000 layers, more than the 128 a disk image may have/)
    assert.equal(registry.seen.filter((request) => request.path.includes("/blobs/")).length, 0)
    assert.ok(seconds < 15, `refused after ${seconds} s`)
    assert.deepEqual(await storeImages(`${work}/many-store`), [])
  },
)
