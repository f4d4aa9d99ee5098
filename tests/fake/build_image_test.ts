/**
 * The build use case on fakes: what follows a build (the result, `--cache-to`, the prune to the
 * cache's size) and what a dry run says instead; after the image is published, only warnings.
 */
import assert from "node:assert/strict"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { buildImage } from "../../src/app/build_image.ts"
import { listImages } from "../../src/app/image_firmware.ts"
import { ImageExists } from "../../src/domain/errors/store.ts"
import { analyzeImagefile } from "../../src/domain/imagefile/mod.ts"
import { HelperVmStatesMemory } from "../../src/layers/memory/helper_vm_states_memory.ts"
import { MemoryRegistries, RegistryMemory } from "../../src/layers/memory/registry_memory.ts"
import { LayerCache } from "../../src/services/layer_cache.ts"
import { runTest } from "../support/effect.ts"
import { WorldFileSystem } from "../support/world_files.ts"
import { defaultOptions, type Harness, harness } from "./harness.ts"

const IMAGEFILE = "FROM scratch\nDISK 1 GB GPT\nPARTITION 1 FORMAT ext4 MOUNT /\nRUN one\n"
const { imagefile } = analyzeImagefile(IMAGEFILE, "Imagefile")

const setUp = () => {
  const h = harness()
  h.world.runScript = (command, guest) => {
    guest.writeFile(`/${command}`, `${command}\n`.repeat(100))
    return { exitCode: 0 }
  }
  return h
}

/** The harness with what the use case adds: the registries, the saved states, files. */
const servicesOf = (h: Harness, registries: MemoryRegistries) =>
  Layer.mergeAll(
    h.layer,
    RegistryMemory(registries),
    HelperVmStatesMemory(),
    WorldFileSystem(h.world),
  ).pipe(Layer.provideMerge(Layer.merge(NodeContext.layer, FetchHttpClient.layer)))

const events = (h: Harness, kind: string) => h.report.events.filter((e) => e.event === kind)

Deno.test("a build reports its result, then prunes the step cache to its limit", () =>
  runTest(Effect.gen(function* () {
    const h = setUp()
    const left = yield* buildImage({
      imagefile,
      options: defaultOptions("web"),
      dryRun: false,
      keepBytes: 0,
    }).pipe(
      Effect.zipRight(Effect.flatMap(LayerCache, (cache) => cache.list)),
      Effect.provide(servicesOf(h, new MemoryRegistries())),
    )
    const [result] = events(h, "result")
    assert.equal(result?.event === "result" && result.name, "web")
    assert.ok(h.world.images.has("web"))
    // The limit of 0 bytes leaves no layer that holds any.
    assert.deepEqual(left.filter((entry) => entry.sizeBytes > 0), [])
  })))

Deno.test("a dry run says where the image would go, and reports no result", () =>
  runTest(Effect.gen(function* () {
    const h = setUp()
    yield* buildImage({
      imagefile,
      options: defaultOptions("web"),
      dryRun: true,
      keepBytes: 0,
      cacheTo: "registry.example/team/cache:main",
    }).pipe(Effect.provide(servicesOf(h, new MemoryRegistries())))
    assert.deepEqual(events(h, "result"), [])
    const infos = events(h, "info").map((e) => e.event === "info" && e.message)
    assert.ok(infos.some((text) => String(text).startsWith("Dry run: nothing was built")))
  })))

Deno.test("--cache-to pushes the layers after the build; a refusing registry only warns", () =>
  runTest(Effect.gen(function* () {
    const registries = new MemoryRegistries()
    registries.locked.add("registry.example/team/locked")
    const build = (h: Harness, cacheTo: string) =>
      buildImage({
        imagefile,
        options: defaultOptions("web", { force: true }),
        dryRun: false,
        keepBytes: 1024 ** 3,
        cacheTo,
      }).pipe(Effect.provide(servicesOf(h, registries)))

    const shared = setUp()
    yield* build(shared, "registry.example/team/cache:main")
    assert.ok(registries.repositories.get("registry.example/team/cache")?.manifests.has("main"))
    assert.deepEqual(events(shared, "warning"), [])

    const refused = setUp()
    yield* build(refused, "registry.example/team/locked:main")
    const [warning] = events(refused, "warning")
    assert.ok(
      warning?.event === "warning" &&
        warning.message.startsWith(
          "The build cache was not pushed to registry.example/team/locked:main: ",
        ),
    )
    assert.equal(events(refused, "result").length, 1)
  })))

Deno.test("a build into the store records the firmware its disk needs; image ls shows it", () =>
  runTest(Effect.gen(function* () {
    const h = setUp()
    const uefi = analyzeImagefile(
      "FROM scratch\nDISK 1 GB GPT\n" +
        "PARTITION 1 SIZE 100 MB FORMAT vfat MOUNT /boot/efi FLAGS efi\n" +
        "PARTITION 2 FORMAT ext4 MOUNT /\nRUN one\n",
      "Imagefile",
    ).imagefile
    const listed = yield* Effect.gen(function* () {
      yield* buildImage({ imagefile, options: defaultOptions("bios"), dryRun: false, keepBytes: 1 })
      yield* buildImage({
        imagefile: uefi,
        options: defaultOptions("uefi"),
        dryRun: false,
        keepBytes: 1,
      })
      // Recorded at publish, in the image's store record.
      const records = [...h.world.files].filter(([path]) => path.includes(".identity/"))
      assert.deepEqual(
        records.map(([path, text]) => [path.replace(/.*\//, ""), JSON.parse(text).notes]).sort(),
        [["bios.json", { firmware: "bios" }], ["uefi.json", { firmware: "uefi" }]],
      )
      return yield* listImages()
    }).pipe(Effect.provide(servicesOf(h, new MemoryRegistries())))
    assert.deepEqual(
      listed.map(({ name, firmware }) => ({ name, firmware })).sort((a, b) =>
        a.name.localeCompare(b.name)
      ),
      [{ name: "bios", firmware: "bios" }, { name: "uefi", firmware: "uefi" }],
    )
  })))

Deno.test("build --local --format: an export's file is not replaced without --force, and the result comes after the exports", () =>
  runTest(Effect.gen(function* () {
    const local = (h: Harness, replaceExports: boolean) =>
      buildImage({
        imagefile,
        options: defaultOptions("web", {
          target: { _tag: "Local", name: "web", path: "/context/.web.build.qcow2" },
          force: true,
        }),
        dryRun: false,
        keepBytes: 1,
        exports: [{
          path: "/context/web.vhdx",
          format: "vhdx",
          machine: { cpus: 1, memoryMiB: 512 },
        }],
        replaceExports,
        discardImage: true,
      }).pipe(Effect.provide(servicesOf(h, new MemoryRegistries())))

    // An earlier export: a disk of one sector where the new one would go.
    const earlier = () => ({ sizeBytes: 512, partitions: [] })
    const refused = setUp()
    refused.world.disks.set("/context/web.vhdx", earlier())
    const exit = yield* Effect.exit(local(refused, false))
    const error = exit._tag === "Failure" && exit.cause._tag === "Fail" ? exit.cause.error : exit
    assert.equal(error instanceof ImageExists && error.path, "/context/web.vhdx", String(error))
    assert.deepEqual(refused.world.log.filter((entry) => entry.op === "boot"), [], "no VM started")
    assert.equal(refused.world.disks.get("/context/web.vhdx")?.sizeBytes, 512, "left as it was")

    const forced = setUp()
    forced.world.disks.set("/context/web.vhdx", earlier())
    yield* local(forced, true)
    assert.equal(forced.world.disks.get("/context/web.vhdx")?.sizeBytes, 1024 ** 3, "replaced")
    assert.ok(!forced.world.disks.has("/context/.web.build.qcow2"), "the source qcow2 is gone")
    const kinds = forced.report.events.map((e) => e.event === "info" ? e.message : e.event)
    const wrote = kinds.findIndex((kind) => kind.startsWith("Wrote /context/web.vhdx"))
    assert.ok(wrote !== -1 && wrote < kinds.indexOf("result"), kinds.join(", "))
  })))
