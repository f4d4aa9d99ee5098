/**
 * `image push`, a pull's registry half, `--cache-to` and `--cache-from` over RegistryMemory and
 * the memory layers: no registry server, no QEMU, milliseconds each. The disks travel as the
 * bytes tests/support/world_files.ts gives them. (tests/unit/registry_fake_test.ts does the same
 * over HTTP, tests/e2e/registry_test.ts against docker-registry and skopeo.)
 */
import assert from "node:assert/strict"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { pushBuildCache } from "../../src/app/build_cache.ts"
import { pushImage } from "../../src/app/push_image.ts"
import { decodeCacheMap, diskCandidates, MediaType } from "../../src/domain/oci_manifest.ts"
import { parseOciReference } from "../../src/domain/oci_reference.ts"
import { MemoryRegistries, RegistryMemory } from "../../src/layers/memory/registry_memory.ts"
import { download } from "../../src/layers/store/download.ts"
import { openOciLayer, resolveOciDisk } from "../../src/layers/store/oci_source.ts"
import { build } from "../../src/app/build.ts"
import { ReporterMemory, ReportLog } from "../../src/layers/memory/reporter_memory.ts"
import { MemoryWorld } from "../../src/layers/memory/world.ts"
import { diskBytes } from "../../src/layers/memory/disk_bytes.ts"
import { WorldFileSystem } from "../support/world_files.ts"
import { defaultOptions, type Harness, harness, planOf, withCacheFrom } from "./harness.ts"

const REGISTRY = "registry.example"
const IMAGEFILE = [
  "FROM scratch",
  "DISK 1 GB GPT",
  "PARTITION 1 FORMAT ext4 MOUNT /",
  "RUN one",
  "RUN two",
].join("\n") + "\n"

const writing = (h: Harness) => {
  h.world.runScript = (command, guest) => {
    guest.writeFile(`/${command.replace(/\W/g, "_")}`, command)
    return { exitCode: 0 }
  }
}

/** What the use cases run on besides the harness: the registry, the world's files, a host. */
const around = (h: Harness, registries: MemoryRegistries) =>
  Layer.mergeAll(h.layer, RegistryMemory(registries), WorldFileSystem(h.world)).pipe(
    Layer.provideMerge(Layer.merge(NodeContext.layer, FetchHttpClient.layer)),
  )

const run = <A, E>(effect: Effect.Effect<A, E, never>) => Effect.runPromiseExit(effect)

const value = <A, E>(exit: Exit.Exit<A, E>): A => {
  if (Exit.isSuccess(exit)) return exit.value
  throw new Error(Cause.pretty(exit.cause))
}

const failureTag = <A, E>(exit: Exit.Exit<A, E>): string => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "None") throw new Error(Cause.pretty(exit.cause))
  return (failure.value as { readonly _tag: string })._tag
}

const buildIn = async (h: Harness, name: string, layer = h.layer) =>
  value(
    await run(
      build(planOf(IMAGEFILE), defaultOptions(name, { force: true })).pipe(Effect.provide(layer)),
    ),
  )

const fileOf = (h: Harness, name: string, path: string) => {
  const disk = h.world.disks.get(h.world.images.get(name) ?? "")
  const node = disk?.partitions[0]?.filesystem?.tree.get(path)
  return node?.kind === "file" ? new TextDecoder().decode(node.content) : undefined
}

const manifestAt = (registries: MemoryRegistries, repository: string, tag: string) => {
  const stored = registries.repositories.get(`${REGISTRY}/${repository}`)?.manifests.get(tag)
  assert.ok(stored, `${repository}:${tag} is in the registry`)
  return { ...stored, json: JSON.parse(new TextDecoder().decode(stored.bytes)) }
}

Deno.test("image push: a containerDisk whose layer holds the disk; a second push sends no disk", async () => {
  const h = harness()
  writing(h)
  await buildIn(h, "web")
  const registries = new MemoryRegistries()
  const push = pushImage({
    name: "web",
    reference: `${REGISTRY}/team/web:1`,
    format: "containerdisk",
  }).pipe(Effect.provide(around(h, registries)))

  const first = value(await run(push))
  const manifest = manifestAt(registries, "team/web", "1")
  assert.equal(first.pinned, `${REGISTRY}/team/web@${first.digest}`)
  assert.equal(manifest.mediaType, MediaType.ociManifest)
  assert.equal(manifest.json.config.mediaType, MediaType.ociConfig)
  assert.equal(manifest.json.annotations["io.transient.image.name"], "web")
  const [layer] = manifest.json.layers
  const blob = registries.repositories.get(`${REGISTRY}/team/web`)?.blobs.get(layer.digest)
  assert.ok(blob, "the layer is uploaded")
  const disk = diskBytes(h.world.disks.get(h.world.images.get("web") ?? "")!)
  // A tar: the disk/ and disk/disk.img headers, then the image's bytes.
  assert.deepEqual(blob.subarray(1024, 1024 + disk.length), disk)
  assert.equal(new TextDecoder().decode(blob.subarray(512, 525)), "disk/disk.img")

  const uploads = registries.log.filter((entry) => entry.startsWith("upload")).length
  const second = value(await run(push))
  assert.equal(second.digest, first.digest)
  assert.equal(registries.log.filter((entry) => entry.startsWith("upload")).length, uploads)
  assert.ok(
    h.report.events.some((event) =>
      event.event === "info" && event.message.startsWith("The registry has the disk already")
    ),
  )
})

Deno.test("image push refuses a missing image, a digest reference and a registry that says no", async () => {
  const h = harness()
  writing(h)
  await buildIn(h, "web")
  const registries = new MemoryRegistries()
  registries.locked.add(`${REGISTRY}/team/locked`)
  const attempt = (name: string, reference: string) =>
    run(
      pushImage({ name, reference, format: "containerdisk" }).pipe(
        Effect.provide(around(h, registries)),
      ),
    )
  assert.equal(failureTag(await attempt("missing", `${REGISTRY}/team/web:1`)), "ImageNotInStore")
  assert.equal(
    failureTag(await attempt("web", `${REGISTRY}/team/web@sha256:${"1".repeat(64)}`)),
    "InvalidOciReference",
  )
  assert.equal(failureTag(await attempt("web", `${REGISTRY}/Team:1`)), "InvalidOciReference")
  assert.equal(
    failureTag(await attempt("web", `${REGISTRY}/team/locked:1`)),
    "RegistryUnauthorized",
  )
  assert.equal(registries.repositories.size, 0, "nothing was stored")
})

Deno.test("a pushed containerDisk pulls back: its manifest read into its disk, the disk unpacked", async () => {
  const h = harness()
  writing(h)
  await buildIn(h, "web")
  const registries = new MemoryRegistries()
  const layer = around(h, registries)
  value(
    await run(
      pushImage({ name: "web", reference: `${REGISTRY}/team/web:1`, format: "containerdisk" })
        .pipe(Effect.provide(layer)),
    ),
  )
  const reference = Either.getOrThrow(parseOciReference(`${REGISTRY}/team/web:1`))
  const pulled = Effect.gen(function* () {
    const disk = yield* resolveOciDisk("copy", reference)
    assert.equal(disk.layout._tag, "ContainerDisk")
    const [last] = diskCandidates(disk.layout)
    yield* download(
      { name: "copy", source: { _tag: "Oci", reference } },
      { describe: disk.repository.describe, label: "Downloading" },
      openOciLayer(disk, last!),
      "/store/.working/copy",
      { maxImageBytes: 1024 ** 3 },
    )
  }).pipe(Effect.scoped, Effect.provide(layer))
  value(await run(pulled))
  const copy = h.world.disks.get("/store/.working/copy")
  assert.ok(copy, "the download became a disk")
  assert.deepEqual(
    copy.partitions[0]?.filesystem?.tree.get("/two"),
    h.world.disks.get(h.world.images.get("web") ?? "")?.partitions[0]?.filesystem?.tree.get(
      "/two",
    ),
  )

  // Tampered: other bytes under the layer's digest fail the pull's checksum.
  const manifest = manifestAt(registries, "team/web", "1")
  const blobs = registries.repositories.get(`${REGISTRY}/team/web`)!.blobs
  const digest = manifest.json.layers[0].digest
  const tampered = blobs.get(digest)!.slice()
  tampered[tampered.length - 1]! ^= 0xff
  blobs.set(digest, tampered)
  const again = Effect.gen(function* () {
    const disk = yield* resolveOciDisk("copy", reference)
    yield* download(
      { name: "copy", source: { _tag: "Oci", reference } },
      { describe: disk.repository.describe, label: "Downloading" },
      openOciLayer(disk, diskCandidates(disk.layout)[0]!),
      "/store/.working/copy2",
      { maxImageBytes: 1024 ** 3 },
    )
  }).pipe(Effect.scoped, Effect.provide(layer))
  assert.equal(failureTag(await run(again)), "ChecksumMismatch")
})

Deno.test("FROM NAME,oci=REF builds on the disk a push left in the registry", async () => {
  const registries = new MemoryRegistries()
  // One machine builds `web` (a root filesystem: it has an fstab) and pushes it.
  const a = harness()
  a.world.runScript = (command, guest) => {
    guest.writeFile(`/${command.replace(/\W/g, "_")}`, command)
    guest.writeFile("/etc/fstab", "/dev/sda1 / ext4 defaults 0 1\n")
    return { exitCode: 0 }
  }
  await buildIn(a, "web")
  const reference = `${REGISTRY}/team/web:1`
  value(
    await run(
      pushImage({ name: "web", reference, format: "containerdisk" }).pipe(
        Effect.provide(around(a, registries)),
      ),
    ),
  )

  // Another builds FROM it: its store pulls through the registry's half of a real pull.
  const world = new MemoryWorld()
  const pulling = Layer.mergeAll(
    RegistryMemory(registries),
    WorldFileSystem(world),
    ReporterMemory(new ReportLog()),
  ).pipe(Layer.provideMerge(Layer.merge(NodeContext.layer, FetchHttpClient.layer)))
  const b = harness({}, world, {
    fetch: (spec, source, path) =>
      Effect.gen(function* () {
        if (source._tag !== "Oci") return yield* Effect.die("only OCI sources here")
        const disk = yield* resolveOciDisk(spec.name, source.reference)
        const [last] = diskCandidates(disk.layout)
        yield* download(
          spec,
          { describe: disk.repository.describe, label: "Downloading" },
          openOciLayer(disk, last!),
          path,
          { maxImageBytes: 1024 ** 3 },
        )
      }).pipe(Effect.scoped, Effect.provide(pulling)),
  })
  writing(b)
  const derived = `FROM base,oci=${reference}\nRUN three\n`
  value(
    await run(
      build(planOf(derived), defaultOptions("derived")).pipe(Effect.provide(b.layer)),
    ),
  )
  assert.ok(b.world.images.has("base"), "the pulled image is in the store")
  assert.equal(fileOf(b, "derived", "/two"), "two", "the pushed disk's file")
  assert.equal(fileOf(b, "derived", "/three"), "three", "the derived build's own file")
  assert.equal(b.report.stepLines()[0], `Step 1/2 : FROM base,oci=${reference}`)
})

Deno.test("--cache-to pushes the build's layers once; --cache-from serves them to an empty cache", async () => {
  const registries = new MemoryRegistries()
  const cache = `${REGISTRY}/team/cache:main`

  // One machine builds and pushes its step layers.
  const a = harness()
  writing(a)
  const built = await buildIn(a, "web")
  const pushed = pushBuildCache(cache, built.layers).pipe(Effect.provide(around(a, registries)))
  assert.equal(value(await run(pushed)), built.layers.length)
  const map = manifestAt(registries, "team/cache", "main")
  assert.equal(map.json.artifactType, MediaType.cacheArtifact)
  const entries = Either.getOrThrow(decodeCacheMap(map.bytes))
  assert.deepEqual(entries.map((entry) => entry.key), built.layers.map((layer) => layer.key))
  // Again: every layer is there under its key and parent.
  assert.equal(value(await run(pushed)), 0)

  // Another machine, with an empty step cache, builds the same Imagefile from it.
  const b = harness()
  writing(b)
  const from = b.report.events.length
  await buildIn(
    b,
    "web",
    withCacheFrom(b, [`${REGISTRY}/team/nothing:here`, cache], RegistryMemory(registries)),
  )
  const ends = b.report.events.slice(from).flatMap((event) =>
    event.event === "step-end" ? [event] : []
  )
  assert.ok(ends.length > 0 && ends.every((event) => event.cached === true), "every step cached")
  assert.equal(b.world.log.filter((entry) => entry.op === "boot").length, 0, "no VM booted")
  assert.equal(fileOf(b, "web", "/two"), "two")
})

Deno.test("--cache-from: a registry that refuses is a warning, and the build runs its steps", async () => {
  const registries = new MemoryRegistries()
  registries.locked.add(`${REGISTRY}/team/cache`)
  const h = harness()
  writing(h)
  await buildIn(
    h,
    "web",
    withCacheFrom(h, [`${REGISTRY}/team/cache:main`], RegistryMemory(registries)),
  )
  assert.ok(
    h.report.events.some((event) =>
      event.event === "warning" &&
      event.message.startsWith(`The build cache ${REGISTRY}/team/cache:main was not used: Registry`)
    ),
  )
  assert.equal(h.world.log.filter((entry) => entry.op === "boot").length, 1)
})
