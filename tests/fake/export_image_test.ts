/**
 * The export use case on memory ports: which format qemu-img is asked for, the temporary beside
 * PATH renamed into place, an OVA's tar around the disk, and nothing left behind when the
 * conversion fails (a full disk) or is interrupted.
 */
import assert from "node:assert/strict"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { createHash } from "node:crypto"
import { exportImage, type ExportImageRequest } from "../../src/app/export_image.ts"
import { DiskImageError } from "../../src/domain/errors/store.ts"
import { DiskImagesMemory } from "../../src/layers/memory/disk_images_memory.ts"
import { ImageStoreMemory } from "../../src/layers/memory/image_store_memory.ts"
import { ReporterMemory, ReportLog } from "../../src/layers/memory/reporter_memory.ts"
import { MemoryWorld } from "../../src/layers/memory/world.ts"
import { DiskImages } from "../../src/services/disk_images.ts"
import { runFailure, runTest } from "../support/effect.ts"
import { WorldFileSystem } from "../support/world_files.ts"

const machine = { cpus: 2, memoryMiB: 1024 }

/** A world whose store holds `web`, and the layers of an export over it. */
const setUp = (
  convert?: "fails with a full disk" | "never ends",
  sizeBytes = 64 * 1024 * 1024,
) => {
  const world = new MemoryWorld()
  world.images.set("web", "/store/web")
  world.disks.set("/store/web", { sizeBytes, partitions: [] })
  const disks = Layer.effect(
    DiskImages,
    Effect.map(DiskImages, (memory) => ({
      ...memory,
      convert: (options: Parameters<typeof memory.convert>[0]) =>
        convert === undefined ? memory.convert(options) : Effect.zipRight(
          // The target exists, partly written, when the conversion stops.
          memory.convert(options),
          convert === "never ends" ? Effect.never : Effect.fail(
            new DiskImageError({
              operation: "convert",
              path: options.from,
              reason: "error while writing at byte 1048576: No space left on device",
            }),
          ),
        ),
    })),
  ).pipe(Layer.provide(DiskImagesMemory(world)))
  const layer = Layer.mergeAll(
    disks,
    ImageStoreMemory(world),
    ReporterMemory(new ReportLog()),
    WorldFileSystem(world),
    Path.layer,
  )
  return { world, layer }
}

const request = (path: string, format: ExportImageRequest["format"]): ExportImageRequest => ({
  image: "web",
  path,
  format,
  machine,
})

/** The paths under `dir` the world holds as disks. */
const disksUnder = (world: MemoryWorld, dir: string) =>
  [...world.disks.keys()].filter((path) => path.startsWith(`${dir}/`)).sort()

Deno.test("an export converts to a temporary beside PATH in the format asked, then renames it", () =>
  runTest(Effect.gen(function* () {
    const { world, layer } = setUp()
    yield* exportImage(request("/out/web.vhdx", "vhdx")).pipe(Effect.provide(layer))
    const converts = world.log.filter((entry) => entry.op === "convert")
    assert.equal(converts.length, 1)
    const [convert] = converts
    assert.ok(convert?.op === "convert")
    assert.equal(convert.from, "/store/web")
    assert.equal(convert.format, "vhdx")
    assert.match(convert.to, /^\/out\/\.web\.vhdx\.[0-9a-f]{8}\.part$/)
    assert.deepEqual(disksUnder(world, "/out"), ["/out/web.vhdx"])
  })))

Deno.test("a fixed VHD of a size that is not whole MiBs is converted from a grown overlay", () =>
  runTest(Effect.gen(function* () {
    const { world, layer } = setUp(undefined, 100_000_000)
    yield* exportImage(request("/out/web.vhd", "vhd")).pipe(Effect.provide(layer))
    const convert = world.log.findLast((entry) => entry.op === "convert")
    assert.ok(convert?.op === "convert")
    assert.match(convert.from, /^\/out\/\.web\.vhd\.[0-9a-f]{8}\.grown\.qcow2$/)
    assert.equal(convert.format, "vpc")
    assert.deepEqual(disksUnder(world, "/out"), ["/out/web.vhd"])
  })))

Deno.test("an OVA is a tar of the OVF, the VMDK and a manifest whose digests match", () =>
  runTest(Effect.gen(function* () {
    const { world, layer } = setUp()
    const bytes = yield* Effect.gen(function* () {
      yield* exportImage(request("/out/web.ova", "ova"))
      return yield* (yield* FileSystem.FileSystem).readFile("/out/web.ova")
    }).pipe(Effect.provide(layer))
    const members = readTar(bytes)
    assert.deepEqual(members.map((member) => member.name), ["web.ovf", "web-disk1.vmdk", "web.mf"])
    const text = new TextDecoder()
    assert.match(text.decode(members[0]!.data), /ovf:capacity="67108864"/)
    const manifest = text.decode(members[2]!.data)
    for (const member of members.slice(0, 2)) {
      const digest = createHash("sha256").update(member.data).digest("hex")
      assert.ok(manifest.includes(`SHA256(${member.name})= ${digest}\n`), member.name)
    }
    // The VMDK was a temporary: only the OVA is left.
    assert.deepEqual(disksUnder(world, "/out"), [])
    assert.ok(world.log.some((entry) => entry.op === "convert" && entry.format === "vmdk"))
  })))

Deno.test("a full disk mid-export is one error naming PATH, and nothing is left", async () => {
  const { world, layer } = setUp("fails with a full disk")
  const cause = await runFailure(
    exportImage(request("/out/web.ova", "ova")).pipe(Effect.provide(layer)),
  )
  const error = cause._tag === "Fail" ? cause.error : undefined
  assert.equal(error?._tag, "ExportFailed")
  assert.equal(error?.message, "Cannot export to /out/web.ova: no space left on the device")
  assert.deepEqual(disksUnder(world, "/out"), [])
})

Deno.test("an interrupted export leaves nothing beside PATH", () =>
  runTest(Effect.gen(function* () {
    const { world, layer } = setUp("never ends")
    const fiber = yield* Effect.fork(
      exportImage(request("/out/web.raw", "raw")).pipe(Effect.provide(layer)),
    )
    // Wait until the conversion has written its temporary.
    while (disksUnder(world, "/out").length === 0) yield* Effect.yieldNow()
    yield* Fiber.interrupt(fiber)
    assert.deepEqual(disksUnder(world, "/out"), [])
  })))

/** The members of a ustar archive (regular files only, as an OVA holds). */
const readTar = (bytes: Uint8Array) => {
  const members: Array<{ name: string; data: Uint8Array }> = []
  let offset = 0
  while (offset + 512 <= bytes.length && bytes[offset] !== 0) {
    const header = bytes.subarray(offset, offset + 512)
    const name = new TextDecoder().decode(header.subarray(0, 100)).replace(/\0.*$/s, "")
    const size = parseInt(new TextDecoder().decode(header.subarray(124, 136)), 8)
    members.push({ name, data: bytes.slice(offset + 512, offset + 512 + size) })
    offset += 512 + Math.ceil(size / 512) * 512
  }
  return members
}
