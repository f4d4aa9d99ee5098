/**
 * ImageStoreDirectory fetching images from a loopback HTTP server started here (127.0.0.1 only),
 * from files and from a Vagrant API. What the store wrote is checked with qemu-img itself.
 */
import assert from "node:assert/strict"
import { createHash } from "node:crypto"
import * as zlib from "node:zlib"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { encodeImageName } from "../../src/domain/image_spec.ts"
import { DiskImagesQemu } from "../../src/layers/qemu/disk_images_qemu.ts"
import { type ConsoleSink, ReporterConsole } from "../../src/layers/reporter/reporter_console.ts"
import { ImageStoreDirectory } from "../../src/layers/store/image_store_directory.ts"
import { RegistryHttp } from "../../src/layers/registry/registry_http.ts"
import { ImageStore } from "../../src/services/image_store.ts"
import { runFailure, runTest } from "../support/effect.ts"
import { mountTmpfs, tmpfsProblem, unmountTmpfs } from "../support/tmpfs.ts"
import { runBinary } from "../support/host_tool.ts"

const MiB = 1024 * 1024

/** `argv`'s stdout; it must succeed. */
const run = async (argv: readonly [string, ...Array<string>]): Promise<Uint8Array> => {
  const output = await runBinary(argv)
  if (output.code !== 0) throw new Error(`${argv.join(" ")} failed: ${output.stderr}`)
  return output.stdout
}

/** Whether two images hold the same guest-visible bytes, according to qemu-img. */
const sameContent = async (a: string, aFormat: string, b: string): Promise<boolean> => {
  const status = await new Deno.Command("qemu-img", {
    args: ["compare", "-q", "-f", aFormat, "-F", "qcow2", a, b],
  }).output()
  return status.code === 0
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

// ---- fixtures: a small raw disk, its qcow2, compressed forms, a Vagrant box ----

const fixtures = await Deno.makeTempDir({ prefix: "transient-store-fixtures-" })
const rawPath = `${fixtures}/disk.raw`
const raw = new Uint8Array(4 * MiB)
// Scattered non-zero data, so that holes and data both have to come out right.
for (let i = 0; i < raw.length; i += 4096) raw[i] = (i / 4096) % 251 + 1
raw.set(new TextEncoder().encode("transient test disk"), 2 * MiB + 17)
// An MBR's boot signature: what makes a raw file a disk to the store's strict probe.
raw.set([0x55, 0xaa], 510)
await Deno.writeFile(rawPath, raw)
const qcow2Path = `${fixtures}/disk.qcow2`
await run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", rawPath, qcow2Path])
const qcow2 = await Deno.readFile(qcow2Path)
const xz = await run(["xz", "-c", "-1", rawPath])
const bzip2 = await run(["bzip2", "-c", "-1", rawPath])
const gzip = zlib.gzipSync(raw)
const zstd = zlib.zstdCompressSync(raw)
// Random bytes do not compress: half of this is more than one 1 MiB chunk of a download.
const noise = new Uint8Array(3 * MiB)
for (let i = 0; i < noise.length; i += 65536) crypto.getRandomValues(noise.subarray(i, i + 65536))
const stallGzip = zlib.gzipSync(noise)

await Deno.mkdir(`${fixtures}/box/inner`, { recursive: true })
await Deno.copyFile(qcow2Path, `${fixtures}/box/inner/box.img`)
await Deno.writeTextFile(`${fixtures}/box/metadata.json`, `{"provider":"libvirt","format":"qcow2"}`)
await Deno.writeTextFile(`${fixtures}/box/Vagrantfile`, "Vagrant.configure('2') {}\n")
await run(["tar", "-C", `${fixtures}/box`, "-czf", `${fixtures}/box.tar.gz`, "."])
const box = await Deno.readFile(`${fixtures}/box.tar.gz`)

// ---- the loopback server ----

const requests = new Map<string, number>()
let cutNext = true

const handler = async (request: Request): Promise<Response> => {
  const path = new URL(request.url).pathname
  requests.set(path, (requests.get(path) ?? 0) + 1)
  const bytes = (body: Uint8Array) => new Response(body as Uint8Array<ArrayBuffer>)
  switch (path) {
    case "/disk.qcow2":
      return bytes(qcow2)
    case "/disk.raw.xz":
      return bytes(xz)
    case "/disk.raw.bz2":
      return bytes(bzip2)
    case "/disk.raw.gz":
      return bytes(gzip)
    case "/disk.raw.zst":
      return bytes(zstd)
    case "/slow.qcow2":
      // Slow enough that a second request would overlap the first.
      await new Promise((resolve) => setTimeout(resolve, 300))
      return bytes(qcow2)
    case "/cut.raw.gz": {
      if (!cutNext) return bytes(gzip)
      cutNext = false
      // Half the body, then the connection breaks.
      const half = gzip.subarray(0, Math.floor(gzip.length / 2))
      return new Response(
        new ReadableStream({
          async start(controller) {
            controller.enqueue(half)
            await new Promise((resolve) => setTimeout(resolve, 20))
            try {
              controller.error(new Error("connection reset"))
            } catch { /* the client cancelled first */ }
          },
        }),
        { headers: { "content-length": String(gzip.length) } },
      )
    }
    case "/stall.raw.gz": {
      // Half the body, then nothing until the client gives up.
      let timer: ReturnType<typeof setTimeout> | undefined
      return new Response(
        new ReadableStream({
          start(controller) {
            controller.enqueue(stallGzip.subarray(0, Math.floor(stallGzip.length / 2)))
            // The client may have gone before: closing a cancelled stream throws.
            timer = setTimeout(() => {
              try {
                controller.close()
              } catch { /* cancelled */ }
            }, 5000)
          },
          cancel: () => clearTimeout(timer),
        }),
      )
    }
    case "/box.tar.gz":
      return bytes(box)
    case "/api/v1/box/test/box":
      return Response.json({
        tag: "test/box",
        versions: [
          {
            version: "1.0.0",
            providers: [
              { name: "virtualbox", download_url: `${base}/nothing-here` },
              {
                name: "libvirt",
                download_url: `${base}/box.tar.gz`,
                checksum_type: "sha256",
                checksum: sha256(box),
              },
            ],
          },
          {
            version: "2.0.0",
            providers: [{
              name: "libvirt",
              download_url: `${base}/box.tar.gz`,
              checksum_type: "sha256",
              checksum: "0".repeat(64),
            }],
          },
          {
            version: "3.0.0",
            providers: [{ name: "qemu", download_url: `${base}/box.tar.gz` }],
          },
        ],
      })
    default:
      return new Response("not found", { status: 404 })
  }
}

const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler)
const base = `http://127.0.0.1:${server.addr.port}`

// ---- the store under test ----

interface Harness {
  readonly root: string
  readonly events: () => ReadonlyArray<Record<string, unknown>>
  readonly layer: Layer.Layer<ImageStore, unknown>
}

const harness = async (
  options: { readonly maxImageBytes?: number; readonly root?: string } = {},
): Promise<Harness> => {
  const { root: given, ...storeOptions } = options
  const root = given ?? await Deno.makeTempDir({ prefix: "transient-store-" })
  let out = ""
  const decoder = new TextDecoder()
  const sink: ConsoleSink = {
    stdout: (bytes) => out += decoder.decode(bytes),
    stderr: (bytes) => out += decoder.decode(bytes),
    isTerminal: false,
    columns: () => 80,
    now: () => performance.now(),
  }
  const layer = ImageStoreDirectory(root, { vagrantUrl: base, ...storeOptions }).pipe(
    Layer.provide(DiskImagesQemu),
    Layer.provide(ReporterConsole("json", sink)),
    Layer.provide(RegistryHttp(false)),
    Layer.provide(NodeContext.layer),
    Layer.provide(FetchHttpClient.layer),
  )
  const events = () => out.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line))
  return { root, events, layer }
}

const resolve = (h: Harness, spec: string) =>
  Effect.flatMap(ImageStore, (store) => store.resolve(spec)).pipe(Effect.provide(h.layer))

const errorOf = async (h: Harness, spec: string): Promise<string> => {
  const cause = await runFailure(resolve(h, spec))
  return String(cause)
}

/** The store holds exactly these files (besides lock files); nothing half-done is left. */
const assertStoreHolds = async (root: string, names: ReadonlyArray<string>) => {
  const published: Array<string> = []
  for await (const entry of Deno.readDir(root)) if (entry.isFile) published.push(entry.name)
  assert.deepEqual(published.sort(), names.map(encodeImageName).sort())
  for await (const entry of Deno.readDir(`${root}/.working`)) {
    assert.match(entry.name, /\.lock$/, `left in .working: ${entry.name}`)
  }
}

const assertPublished = async (root: string, name: string, original: string, format: string) => {
  const file = `${root}/${encodeImageName(name)}`
  const info = await Deno.stat(file)
  assert.equal(info.mode! & 0o777, 0o444, "published images are read-only")
  const qemuInfo = JSON.parse(
    new TextDecoder().decode(await run(["qemu-img", "info", "--output=json", file])),
  )
  assert.equal(qemuInfo.format, "qcow2")
  assert.equal(qemuInfo["virtual-size"], 4 * MiB)
  assert.ok(await sameContent(original, format, file), "stored image has the original's content")
}

Deno.test("a qcow2 over HTTP is stored read-only, with its content", async () => {
  const h = await harness()
  const image = await runTest(resolve(h, `plain,http=${base}/disk.qcow2`))
  assert.equal(image.name, "plain")
  assert.equal(image.path, `${h.root}/plain`)
  assert.equal(image.format, "qcow2")
  assert.equal(image.virtualSize, 4 * MiB)
  await assertPublished(h.root, "plain", qcow2Path, "qcow2")
  await assertStoreHolds(h.root, ["plain"])
  const progress = h.events().filter((event) => event.event === "progress")
  const download = progress.filter((event) => event.phase === "download")
  assert.equal(download.at(-1)?.bytes, qcow2.length)
  assert.equal(download.at(-1)?.done, true)
  // A qcow2 is stored as it came, once `qemu-img check` has read it all: no conversion.
  const ends = progress.filter((event) => event.done === true)
  assert.deepEqual(ends.map((event) => event.phase), ["download", "verify"])
  assert.equal(ends[1]?.label, "Checking 'plain'")
  // Resolving again uses the stored image: no second download.
  const before = requests.get("/disk.qcow2")
  await runTest(resolve(h, `plain,http=${base}/disk.qcow2`))
  await runTest(resolve(h, "plain"))
  assert.equal(requests.get("/disk.qcow2"), before)
})

for (const [kind, path] of [["xz", "xz"], ["gzip", "gz"], ["zstd", "zst"], ["bzip2", "bz2"]]) {
  Deno.test(`a raw image compressed with ${kind} is decompressed and converted`, async () => {
    const h = await harness()
    await runTest(resolve(h, `raw-${kind},http=${base}/disk.raw.${path}`))
    await assertPublished(h.root, `raw-${kind}`, rawPath, "raw")
    const events = h.events()
    const info = events.filter((event) => event.event === "info").map((event) => event.message)
    assert.ok(info.includes(`'raw-${kind}' is ${kind}-compressed: decompressed as it downloads`))
    // Each phase has a progress of its own, which ends at its total.
    const ends = events.filter((event) => event.event === "progress" && event.done === true)
    assert.deepEqual(ends.map((event) => event.phase), ["download", "convert"])
    assert.equal(ends[1]?.label, `Converting 'raw-${kind}' to qcow2`)
    assert.equal(ends[1]?.bytes, 4 * MiB)
  })
}

Deno.test("without the xz tool, an xz image is decoded by the WebAssembly decoder", async () => {
  // A PATH with qemu-img and nothing else: no xz to find.
  const bin = await Deno.makeTempDir({ prefix: "transient-path-" })
  const qemuImg = new TextDecoder().decode(await run(["sh", "-c", "command -v qemu-img"])).trim()
  await Deno.symlink(qemuImg, `${bin}/qemu-img`)
  const store = await Deno.makeTempDir({ prefix: "transient-store-" })
  await Deno.writeFile(`${fixtures}/fallback.raw.xz`, xz)
  const main = new URL("../../main.ts", import.meta.url).pathname
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, "image", "pull", "--image-backend", store, "--progress", "json"]
      .concat([`nox,file=${fixtures}/fallback.raw.xz`]),
    env: { PATH: bin },
    stdout: "piped",
    stderr: "piped",
  }).output()
  const decoder = new TextDecoder()
  assert.equal(output.code, 0, decoder.decode(output.stderr) + decoder.decode(output.stdout))
  await assertPublished(store, "nox", rawPath, "raw")
})

Deno.test("a local file is copied in, and a given sha256 is verified", async () => {
  const h = await harness()
  await Deno.writeFile(`${fixtures}/disk.raw.xz`, xz)
  await runTest(resolve(h, `local,file=${fixtures}/disk.raw.xz,sha256=${sha256(xz)}`))
  await assertPublished(h.root, "local", rawPath, "raw")
  const wrong = await errorOf(h, `other,file=${fixtures}/disk.raw.xz,sha256=${"1".repeat(64)}`)
  assert.match(wrong, /Checksum mismatch/)
  assert.match(await errorOf(h, `gone,file=${fixtures}/missing.img`), /Cannot read .*missing\.img/)
  await assertStoreHolds(h.root, ["local"])
})

Deno.test("a Vagrant box is found through the API, verified and its box.img stored", async () => {
  const h = await harness()
  await runTest(resolve(h, "mybox,vagrant=test/box:v1.0.0"))
  await assertPublished(h.root, "mybox", qcow2Path, "qcow2")
  // A bare owner/box:version name is a Vagrant box too; the qemu provider stands in for libvirt.
  await runTest(resolve(h, "test/box:3.0.0"))
  await assertPublished(h.root, "test/box:3.0.0", qcow2Path, "qcow2")
})

Deno.test("a Vagrant box with a wrong checksum is rejected and nothing is stored", async () => {
  const h = await harness()
  const error = await errorOf(h, "bad,vagrant=test/box:2.0.0")
  assert.match(error, /Checksum mismatch for Vagrant box test\/box:2\.0\.0/)
  await assertStoreHolds(h.root, [])
})

Deno.test("Vagrant lookups that cannot succeed say why", async () => {
  const h = await harness()
  assert.match(
    await errorOf(h, "x,vagrant=test/box:9.9"),
    /No version '9\.9' available for test\/box with provider libvirt/,
  )
  assert.match(await errorOf(h, "x,vagrant=nobody/nothing:1"), /Unable to download Vagrant box/)
  assert.match(await errorOf(h, "justaname"), /No image named 'justaname' found in the store/)
  await assertStoreHolds(h.root, [])
})

Deno.test("a 404 is a clear error and stores nothing", async () => {
  const h = await harness()
  const error = await errorOf(h, `missing,http=${base}/no/such/image.qcow2`)
  assert.match(error, /Cannot download http:\/\/127\.0\.0\.1:\d+\/no\/such\/image\.qcow2: HTTP 404/)
  await assertStoreHolds(h.root, [])
})

Deno.test("a download cut off midway stores nothing, and the next pull succeeds", async () => {
  const h = await harness()
  cutNext = true
  await runFailure(resolve(h, `cut,http=${base}/cut.raw.gz`))
  await assertStoreHolds(h.root, [])
  await runTest(resolve(h, `cut,http=${base}/cut.raw.gz`))
  await assertPublished(h.root, "cut", rawPath, "raw")
})

Deno.test("two concurrent pulls of one image download it once and both succeed", async () => {
  const h = await harness()
  requests.delete("/slow.qcow2")
  const spec = `shared,http=${base}/slow.qcow2`
  const [a, b] = await runTest(
    Effect.all([resolve(h, spec), resolve(h, spec)], { concurrency: "unbounded" }),
  )
  assert.equal(requests.get("/slow.qcow2"), 1)
  assert.equal(a.path, b.path)
  await assertPublished(h.root, "shared", qcow2Path, "qcow2")
})

Deno.test("an interrupted pull leaves no working file behind", async () => {
  const h = await harness()
  let sawPartial = false
  const watch = Effect.promise(async () => {
    while (!sawPartial) {
      // The store creates .working/ when it opens, which may be after this first looks.
      const entries = await Array.fromAsync(Deno.readDir(`${h.root}/.working`)).catch(() => [])
      sawPartial = entries.some((entry) => entry.name.endsWith(".part"))
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })
  // The pull is interrupted once its partial file exists, halfway through the body.
  await runTest(
    Effect.raceFirst(resolve(h, `stalled,http=${base}/stall.raw.gz`), watch).pipe(Effect.ignore),
  )
  assert.ok(sawPartial)
  await assertStoreHolds(h.root, [])
})

addEventListener("unload", () => {
  server.shutdown()
  Deno.removeSync(fixtures, { recursive: true })
})

for (const kind of ["gz", "xz", "zst", "bz2"]) {
  Deno.test(`an image larger than the cap once decompressed (.${kind}) is refused as it streams`, async () => {
    // disk.raw.* is 4 MiB decompressed, a few KiB compressed.
    const h = await harness({ maxImageBytes: 2 * MiB })
    const error = await errorOf(h, `bomb,http=${base}/disk.raw.${kind}`)
    assert.match(error, /The image from .*disk\.raw\.\w+ is larger than 2\.00 MiB/)
    await assertStoreHolds(h.root, [])
  })
}

Deno.test("a qcow2 that grows past what its header declares is refused as it streams", async () => {
  const h = await harness()
  const liar = `${fixtures}/liar.qcow2`
  await run(["qemu-img", "create", "-q", "-f", "qcow2", liar, "1M"])
  // 40 MiB after a 1 MiB image's header: no qcow2 of that size can be that long.
  const file = await Deno.open(liar, { append: true })
  await file.write(new Uint8Array(40 * MiB).fill(1))
  file.close()
  const error = await errorOf(h, `liar,file=${liar}`)
  assert.match(error, /is larger than .* \(more than its qcow2 header declares/)
  // The same compressed: the decompressor writes the file itself, which is then measured.
  for (const [tool, suffix] of [["xz", "xz"], ["zstd", "zst"]] as const) {
    await Deno.writeFile(`${liar}.${suffix}`, await run([tool, "-c", "-1", liar]))
    const compressed = await errorOf(h, `liar-${tool},file=${liar}.${suffix}`)
    assert.match(compressed, /is larger than .* \(more than its qcow2 header declares/)
  }
  await assertStoreHolds(h.root, [])
})

const noTmpfs = await tmpfsProblem("the full-store case")

Deno.test({
  name: "a pull that would not fit in the store says so before converting, and leaves nothing",
  ignore: noTmpfs !== undefined,
  fn: async () => {
    const mounted = await mountTmpfs(7)
    assert.ok("dir" in mounted, "a 7 MiB tmpfs was mounted")
    try {
      const h = await harness({ root: `${mounted.dir}/store` })
      const error = await errorOf(h, `big,file=${rawPath}`)
      assert.match(error, /Not enough space for image 'big' in .*: it needs up to 4\.00 MiB/)
      await assertStoreHolds(h.root, [])
    } finally {
      await unmountTmpfs(mounted.dir)
    }
  },
})
