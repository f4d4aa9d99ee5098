/**
 * Images through a real OCI registry: Debian's `docker-registry` (CNCF distribution), started
 * here on 127.0.0.1 with a temporary config and storage, one of them with htpasswd (Basic) auth.
 * What transient pushes is read back by an independent client, skopeo; a containerDisk made
 * with skopeo and GNU tar (not with transient) is pulled and built FROM; the refusals leave
 * nothing in the store.
 */
import assert from "node:assert/strict"
import { createHash } from "node:crypto"
import { makeBusyboxRootfs } from "../../examples/hello/make_rootfs.ts"
import { encodeImageName } from "../../src/domain/image_spec.ts"
import {
  lastLine,
  offlineBuildArgs,
  pullImage,
  pushImage,
  transient,
} from "../support/run_transient.ts"
import { writeAuthFile } from "../support/auth_file.ts"
import { identicalImages, startDockerRegistry, storeImages } from "../support/docker_registry.ts"
import { extCat, extractPartition, rawDisk, tool } from "../support/host.ts"

const work = await Deno.makeTempDir({ prefix: "transient-e2e-registry-" })
const env = { TRANSIENT_CACHE_DIR: `${work}/cache` }

const plain = await startDockerRegistry(work)
await tool("htpasswd", "-Bbc", `${work}/htpasswd`, "alice", "wonderland")
const guarded = await startDockerRegistry(work, { htpasswd: `${work}/htpasswd` })
const authFile = await writeAuthFile(`${work}/auth.json`, guarded.host, "alice", "wonderland")

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(work, { recursive: true })
  } catch {
    // Already gone.
  }
})

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex")

/** A build context: the busybox rootfs and `imagefile`. */
const context = async (name: string, imagefile: string) => {
  const dir = `${work}/${name}`
  await Deno.mkdir(dir, { recursive: true })
  await Deno.copyFile(`${work}/rootfs.tar.gz`, `${dir}/rootfs.tar.gz`).catch(() => {})
  await Deno.writeTextFile(`${dir}/Imagefile`, imagefile)
  return dir
}

const build = async (dir: string, name: string, store: string) => {
  const outcome = await transient(
    offlineBuildArgs(dir, "--name", name, "--image-backend", store),
    { env },
  )
  assert.equal(outcome.code, 0, outcome.stderr)
  return `${store}/${encodeImageName(name)}`
}

/** The text of `path` on the image's first partition (ext4), read with debugfs. */
const fileOnImage = async (image: string, path: string) => {
  const raw = `${image}.${crypto.randomUUID()}.raw`
  const { partitions } = await rawDisk(image, raw)
  await extractPartition(raw, partitions[0]!, `${raw}.ext4`)
  const text = await extCat(`${raw}.ext4`, path)
  await Deno.remove(raw)
  await Deno.remove(`${raw}.ext4`)
  return text
}

const skopeo = (...args: ReadonlyArray<string>) => tool("skopeo", ...args)

/** The manifest under `reference`, as skopeo reads it from the plain-HTTP registry. */
const rawManifest = async (reference: string) =>
  JSON.parse(await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${reference}`))

// One built image, shared by the tests: each reads it, none changes it.
await makeBusyboxRootfs(`${work}/rootfs.tar.gz`)
const BASE_IMAGEFILE = [
  "FROM scratch",
  "DISK 64 MB GPT",
  "PARTITION 1 FORMAT ext4 MOUNT /",
  "ADD rootfs.tar.gz /",
  "RUN echo built-here > /marker",
].join("\n") + "\n"
const baseStore = `${work}/base-store`
const baseImage = await build(await context("base", BASE_IMAGEFILE), "base", baseStore)

Deno.test("a pushed containerDisk: skopeo reads it, its disk/disk.img is the image, and it pulls back and builds FROM", async () => {
  const reference = `${plain.host}/e2e/base:1`
  const pushed = await pushImage("base", reference, baseStore)
  assert.equal(pushed.code, 0, pushed.stderr)
  const pinned = lastLine(pushed)
  assert.match(pinned, new RegExp(`^${plain.host}/e2e/base@sha256:[0-9a-f]{64}$`))

  // skopeo: the layout, the annotations, and the same digest.
  const inspected = JSON.parse(
    await skopeo("inspect", "--tls-verify=false", `docker://${reference}`),
  )
  assert.equal(inspected.Digest, pinned.split("@")[1])
  assert.equal(inspected.Os, "linux")
  assert.equal(inspected.Architecture, "amd64")
  assert.equal(inspected.Layers.length, 1)
  assert.equal(
    inspected.Labels["io.transient.imagefile.digest"],
    `sha256:${sha256(BASE_IMAGEFILE)}`,
  )
  const raw = await rawManifest(reference)
  assert.equal(raw.mediaType, "application/vnd.oci.image.manifest.v1+json")
  assert.ok(raw.annotations["org.opencontainers.image.created"])
  assert.equal(raw.annotations["io.transient.version"].length > 0, true)

  // skopeo copies it out; GNU tar reads the layer: disk/ and disk/disk.img, owned by 107.
  const copied = `${work}/skopeo-copy`
  await skopeo("copy", "--src-tls-verify=false", `docker://${reference}`, `dir:${copied}`)
  const layerDigest = (inspected.Layers[0] as string).slice("sha256:".length)
  const listing = await tool("tar", "-tv", "--numeric-owner", "-f", `${copied}/${layerDigest}`)
  assert.match(listing, /^dr-xr-xr-x 107\/107 .* disk\/$/m)
  assert.match(listing, /^-r--r--r-- 107\/107 .* disk\/disk\.img$/m)
  await tool("tar", "-x", "-C", copied, "-f", `${copied}/${layerDigest}`, "disk/disk.img")
  assert.ok(
    await identicalImages(`${copied}/disk/disk.img`, baseImage),
    "the layer's disk is the image",
  )

  // Pulled into another store, by tag and by digest: the same image.
  const store = `${work}/pull-store`
  const byTag = await pullImage(`copy,oci=${reference}`, store)
  assert.equal(byTag.code, 0, byTag.stderr)
  assert.ok(await identicalImages(`${store}/copy`, baseImage))
  const byDigest = await pullImage(`pinned,oci=${pinned}`, store)
  assert.equal(byDigest.code, 0, byDigest.stderr)
  assert.ok(await identicalImages(`${store}/pinned`, baseImage))

  // FROM it, in a store that has never seen it.
  const derived = await build(
    await context(
      "derived",
      `FROM fromreg,oci=${reference}\nRUN cat /marker > /derived; echo and-here >> /derived\n`,
    ),
    "derived",
    `${work}/derived-store`,
  )
  assert.equal(await fileOnImage(derived, "/derived"), "built-here\nand-here\n")

  // Pushed again: the registry has every blob, and says so.
  const again = await pushImage("base", reference, baseStore)
  assert.equal(again.code, 0, again.stderr)
  assert.match(again.stdout, /The registry has the disk already/)
  assert.equal(lastLine(again), pinned)
})

Deno.test("a pushed disk artifact: skopeo reads its type, and it pulls back", async () => {
  const reference = `${plain.host}/e2e/artifact:1`
  const pushed = await pushImage("base", reference, baseStore, { format: "artifact" })
  assert.equal(pushed.code, 0, pushed.stderr)
  const raw = await rawManifest(reference)
  assert.equal(raw.artifactType, "application/vnd.transient.disk.v1")
  assert.equal(raw.layers.length, 1)
  assert.equal(raw.layers[0].annotations["org.opencontainers.image.title"], "base.qcow2.zst")
  const store = `${work}/artifact-store`
  const pulled = await pullImage(`art,oci=${reference}`, store)
  assert.equal(pulled.code, 0, pulled.stderr)
  assert.ok(await identicalImages(`${store}/art`, baseImage))
})

/** An OCI layout made without transient: GNU tar (gzip) layers, JSON written here. */
const foreignLayout = async (name: string, files: Record<string, string>) => {
  const dir = `${work}/${name}`
  const tree = `${dir}/tree`
  await Deno.mkdir(`${tree}/disk`, { recursive: true })
  for (const [file, from] of Object.entries(files)) {
    await Deno.copyFile(from, `${tree}/disk/${file}`)
  }
  const layout = `${dir}/layout`
  await Deno.mkdir(`${layout}/blobs/sha256`, { recursive: true })
  const layer = `${dir}/layer.tar.gz`
  await tool("tar", "-C", tree, "--owner=107", "--group=107", "-czf", layer, "disk")
  const put = async (bytes: Uint8Array) => {
    const digest = createHash("sha256").update(bytes).digest("hex")
    await Deno.writeFile(`${layout}/blobs/sha256/${digest}`, bytes)
    return { digest: `sha256:${digest}`, size: bytes.length }
  }
  const layerBytes = await Deno.readFile(layer)
  const diffId = createHash("sha256").update(
    new Uint8Array(
      await new Response(
        new Blob([layerBytes]).stream().pipeThrough(new DecompressionStream("gzip")),
      ).arrayBuffer(),
    ),
  ).digest("hex")
  const layerBlob = await put(layerBytes)
  const config = await put(new TextEncoder().encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [`sha256:${diffId}`] },
  })))
  const manifest = await put(new TextEncoder().encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layerBlob }],
  })))
  await Deno.writeTextFile(`${layout}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }))
  await Deno.writeTextFile(
    `${layout}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...manifest,
        annotations: { "org.opencontainers.image.ref.name": "1" },
      }],
    }),
  )
  return layout
}

Deno.test("a containerDisk made by other tools (a raw disk, gzip layer, skopeo copy) is pulled and built FROM", async () => {
  const raw = `${work}/foreign.raw`
  await tool("qemu-img", "convert", "-O", "raw", baseImage, raw)
  const layout = await foreignLayout("foreign", { "foreign.img": raw })
  const reference = `${plain.host}/others/disk:1`
  await skopeo("copy", "--dest-tls-verify=false", `oci:${layout}:1`, `docker://${reference}`)

  const store = `${work}/foreign-store`
  const pulled = await pullImage(`foreign,oci=${reference}`, store)
  assert.equal(pulled.code, 0, pulled.stderr)
  assert.ok(await identicalImages(raw, `${store}/foreign`, "raw"))
  const derived = await build(
    await context("from-foreign", `FROM foreign\nRUN cp /marker /copied\n`),
    "from-foreign",
    store,
  )
  assert.equal(await fileOnImage(derived, "/copied"), "built-here\n")
})

Deno.test("Basic auth from REGISTRY_AUTH_FILE; refusals say why and store nothing", async () => {
  const withAuth = { ...env, REGISTRY_AUTH_FILE: authFile }
  const noAuth = {
    ...env,
    REGISTRY_AUTH_FILE: `${work}/missing.json`,
    HOME: work,
    XDG_RUNTIME_DIR: `${work}/none`,
  }
  const reference = `${guarded.host}/private/base:1`
  const pushed = await pushImage("base", reference, baseStore, { env: withAuth })
  assert.equal(pushed.code, 0, pushed.stderr)
  const store = `${work}/auth-store`
  const allowed = await pullImage(`private,oci=${reference}`, store, { env: withAuth })
  assert.equal(allowed.code, 0, allowed.stderr)
  assert.ok(await identicalImages(`${store}/private`, baseImage))

  const refusedStore = `${work}/refused-store`
  const pull = (spec: string, extra: Record<string, string> = noAuth) =>
    pullImage(spec, refusedStore, { env: extra })
  const unauthorized = await pull(`x,oci=${reference}`)
  assert.equal(unauthorized.code, 1)
  assert.match(
    unauthorized.stderr,
    new RegExp(
      `^error: Registry ${guarded.host} refused to let us pull private/base \\(no credentials: `,
      "m",
    ),
  )
  const wrongAuth = await writeAuthFile(`${work}/wrong.json`, guarded.host, "alice", "rabbit")
  const wrong = await pull(`x,oci=${reference}`, { ...env, REGISTRY_AUTH_FILE: wrongAuth })
  assert.equal(wrong.code, 1)
  assert.match(wrong.stderr, new RegExp(`credentials of user 'alice' from ${wrongAuth}`))

  const missingTag = await pull(`x,oci=${plain.host}/e2e/base:nope`)
  assert.equal(missingTag.code, 1)
  assert.match(missingTag.stderr, /has no tag 'nope' in that repository$/m)
  const missingRepository = await pull(`x,oci=${plain.host}/e2e/never:1`)
  assert.match(missingRepository.stderr, /has no repository 'e2e\/never'$/m)

  // Two disks in one containerDisk.
  const layout = await foreignLayout("two-disks", {
    "a.img": `${work}/foreign.raw`,
    "b.img": `${work}/foreign.raw`,
  })
  await skopeo(
    "copy",
    "--dest-tls-verify=false",
    `oci:${layout}:1`,
    `docker://${plain.host}/others/two:1`,
  )
  const two = await pull(`x,oci=${plain.host}/others/two:1`)
  assert.equal(two.code, 1)
  assert.match(two.stderr, /is not a disk image: its layer holds several files under disk\//)

  // A blob whose bytes the registry's storage no longer matches.
  const tamperedReference = `${plain.host}/e2e/tampered:1`
  const tamperedPush = await pushImage("base", tamperedReference, baseStore)
  assert.equal(tamperedPush.code, 0, tamperedPush.stderr)
  const manifest = await rawManifest(tamperedReference)
  const digest = (manifest.layers[0].digest as string).slice("sha256:".length)
  const data = `${plain.storage}/docker/registry/v2/blobs/sha256/${
    digest.slice(0, 2)
  }/${digest}/data`
  const bytes = await Deno.readFile(data)
  // A byte of the disk, inside the tar: the archive still reads, only the digest tells.
  bytes[Math.floor(bytes.length / 2)]! ^= 0xff
  await Deno.writeFile(data, bytes)
  const tampered = await pull(`x,oci=${tamperedReference}`)
  assert.equal(tampered.code, 1)
  assert.match(
    tampered.stderr,
    new RegExp(
      `^error: Checksum mismatch for ${tamperedReference}: expected sha256 ${digest}, got [0-9a-f]{64}$`,
      "m",
    ),
  )
  assert.deepEqual(await storeImages(refusedStore), [])
})

/** A build with its own step cache `cache`, its steps as it reported them. */
const cachedBuild = async (
  dir: string,
  name: string,
  cache: string,
  ...extra: ReadonlyArray<string>
) => {
  const outcome = await transient(
    offlineBuildArgs(
      dir,
      "--name",
      name,
      "--force",
      "--image-backend",
      `${work}/cache-store`,
      ...extra,
    ),
    { env: { TRANSIENT_CACHE_DIR: cache } },
  )
  const lines = outcome.stdout.split("\n")
  const steps = new Map<number, string>()
  for (const [i, line] of lines.entries()) {
    const step = /^Step (\d+)\/\d+ : /.exec(line)?.[1]
    if (step !== undefined) steps.set(Number(step), lines[i + 1] ?? "")
  }
  return { ...outcome, steps, image: `${work}/cache-store/${encodeImageName(name)}` }
}

const pruneAll = async (cache: string) => {
  const pruned = await transient(["cache", "prune", "--all"], {
    env: { TRANSIENT_CACHE_DIR: cache },
  })
  assert.equal(pruned.code, 0, pruned.stderr)
}

Deno.test("a build cache in the registry: pushed with --cache-to, served by --cache-from on an empty local cache", async () => {
  const imagefile = (last: string) =>
    [BASE_IMAGEFILE.trimEnd(), "RUN echo one > /one", `RUN ${last}`].join("\n") + "\n"
  const dir = await context("cached", imagefile("echo two > /two"))
  const cache = `${work}/step-cache`
  const reference = `${plain.host}/e2e/build-cache:main`

  const first = await cachedBuild(dir, "first", cache, "--cache-to", reference)
  assert.equal(first.code, 0, first.stderr)
  assert.equal(first.steps.size, 7)
  const pushed = /Pushed the build cache to .*: (\d+) layers, (\d+) uploaded/.exec(first.stdout)
  assert.ok(pushed, first.stdout)
  const layers = Number(pushed[1])
  assert.equal(pushed[2], pushed[1], "every layer was uploaded the first time")
  // An independent client reads the map.
  const raw = await rawManifest(reference)
  assert.equal(raw.artifactType, "application/vnd.transient.cache.v1")
  assert.equal(raw.layers.length, layers)
  assert.ok(
    raw.layers.every((layer: { annotations: Record<string, string> }) =>
      /^[0-9a-f]{64}$/.test(layer.annotations["io.transient.cache.key"] ?? "")
    ),
  )

  // An empty local cache: every step comes from the registry, none runs, the same image.
  await pruneAll(cache)
  const second = await cachedBuild(dir, "second", cache, "--cache-from", reference)
  assert.equal(second.code, 0, second.stderr)
  assert.deepEqual(
    [...second.steps.values()],
    Array(7).fill(` ---> Using cache (from ${reference})`),
  )
  assert.ok(await identicalImages(first.image, second.image), "the same image as the first build")

  // The last RUN changed: only it runs; the second push uploads only its layer.
  await pruneAll(cache)
  const changed = await context("cached-changed", imagefile("echo three > /two"))
  const third = await cachedBuild(
    changed,
    "third",
    cache,
    "--cache-from",
    reference,
    "--cache-to",
    reference,
  )
  assert.equal(third.code, 0, third.stderr)
  for (let step = 1; step <= 6; step++) {
    assert.equal(third.steps.get(step), ` ---> Using cache (from ${reference})`, `step ${step}`)
  }
  assert.doesNotMatch(third.steps.get(7) ?? "", /Using cache/)
  assert.match(third.stdout, /Pushed the build cache to .*: \d+ layers, 1 uploaded/)
  assert.equal(await fileOnImage(third.image, "/two"), "three\n")

  // A registry that is down, or a map that is no build cache: a warning and a full build.
  await pruneAll(cache)
  const down = await cachedBuild(dir, "down", cache, "--cache-from", "127.0.0.1:1/nothing:here")
  assert.equal(down.code, 0, down.stderr)
  assert.match(
    down.stderr,
    /^warning: The build cache 127\.0\.0\.1:1\/nothing:here was not used: Cannot reach registry/m,
  )
  assert.ok([...down.steps.values()].every((line) => !line.includes("Using cache")))
  await pruneAll(cache)
  const notCache = `${plain.host}/e2e/not-a-cache:1`
  const image = await pushImage("base", notCache, baseStore)
  assert.equal(image.code, 0, image.stderr)
  const garbage = await cachedBuild(dir, "garbage", cache, "--cache-from", notCache)
  assert.equal(garbage.code, 0, garbage.stderr)
  assert.match(
    garbage.stderr,
    /^warning: The build cache .* was not used: .* is not a transient build cache: its manifest is a container image's$/m,
    garbage.stdout,
  )
})

Deno.test("registries are stopped", async () => {
  await plain.stop()
  await guarded.stop()
})
