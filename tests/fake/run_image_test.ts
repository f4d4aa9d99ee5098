/**
 * The `run` use case on fakes: which file it boots (a path, or a stored image by name), what it
 * asks of the VM, and how a VM that will not start fails.
 */
import assert from "node:assert/strict"
import * as Cause from "effect/Cause"
import * as Option from "effect/Option"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import { runImage } from "../../src/app/run_image.ts"
import { DiskImagesMemory } from "../../src/layers/memory/disk_images_memory.ts"
import { ImageStoreMemory } from "../../src/layers/memory/image_store_memory.ts"
import { type MemoryVm, VmRunnerMemory } from "../../src/layers/memory/vm_runner_memory.ts"
import { MemoryWorld } from "../../src/layers/memory/world.ts"
import type { RunOptions } from "../../src/services/vm_runner.ts"
import { runFailure, runTest } from "../support/effect.ts"

const partition = (number: number, type: "efi" | "linux") => ({
  layout: { number, startSector: 2048 * number, sizeSectors: 2048, type, bootable: false },
})
const esp = partition(1, "efi")
const root = partition(2, "linux")

/** A file system whose only regular file is `/images/web.qcow2`. */
const files = FileSystem.layerNoop({
  stat: (path) =>
    path === "/images/web.qcow2"
      ? Effect.succeed({ type: "File" } as FileSystem.File.Info)
      : Effect.fail(new Error("no such file") as never),
})

const setUp = (vm: MemoryVm) =>
  Effect.gen(function* () {
    const world = new MemoryWorld()
    world.images.set("web", "/store/web.qcow2")
    world.disks.set("/store/web.qcow2", { sizeBytes: 1 << 30, partitions: [root] })
    world.disks.set("/images/web.qcow2", { sizeBytes: 1 << 30, partitions: [root] })
    world.images.set("web-uefi", "/store/web-uefi.qcow2")
    world.disks.set("/store/web-uefi.qcow2", { sizeBytes: 1 << 30, partitions: [esp, root] })
    const runs = yield* Ref.make<ReadonlyArray<RunOptions>>([])
    const layer = Layer.mergeAll(
      VmRunnerMemory(vm, runs),
      ImageStoreMemory(world),
      DiskImagesMemory(world),
      files,
    )
    return { runs, layer, world }
  })

const request = {
  accel: "tcg" as const,
  firmware: "bios" as const,
  secureBoot: false,
  memoryMiB: 512,
  network: false,
  forwards: [{ host: 2222, guest: 22 }],
}

Deno.test("run boots a stored image by its file in the store, with the options given", () =>
  runTest(Effect.gen(function* () {
    const { runs, layer } = yield* setUp({ console: ["Booting", "debian login: "] })
    const outcome = yield* runImage({ ...request, image: "web", until: /login:/ }).pipe(
      Effect.provide(layer),
    )
    assert.deepEqual(outcome, { _tag: "Matched", line: "login:" })
    const [run] = yield* Ref.get(runs)
    assert.deepEqual(run?.image, "/store/web.qcow2")
    assert.deepEqual(run?.forwards, [{ host: 2222, guest: 22 }])
    assert.deepEqual(run?.memoryMiB, 512)
  })))

Deno.test("run boots a path to a file as it is, without asking the store", () =>
  runTest(Effect.gen(function* () {
    const { runs, layer } = yield* setUp({ console: [] })
    const outcome = yield* runImage({ ...request, image: "/images/web.qcow2" }).pipe(
      Effect.provide(layer),
    )
    assert.deepEqual(outcome, { _tag: "PoweredOff" })
    assert.deepEqual((yield* Ref.get(runs)).map((run) => run.image), ["/images/web.qcow2"])
  })))

Deno.test("run of a name the store lacks fails before any VM starts", () =>
  runTest(Effect.gen(function* () {
    const { runs, layer } = yield* setUp({ console: [] })
    const exit = yield* Effect.exit(
      runImage({ ...request, image: "missing" }).pipe(Effect.provide(layer)),
    )
    assert.ok(exit._tag === "Failure")
    assert.deepEqual((yield* Ref.get(runs)).length, 0)
  })))

Deno.test("a VM that will not start fails the run with QEMU's reason", async () => {
  const cause = await runFailure(Effect.gen(function* () {
    const { layer } = yield* setUp({ console: [], refuse: "Could not set up host forwarding" })
    return yield* runImage({ ...request, image: "web" }).pipe(Effect.provide(layer))
  }))
  const error = Option.getOrThrow(Cause.failureOption(cause))
  assert.equal(error._tag, "RunFailed")
  assert.equal(error.message, "transient run: Could not set up host forwarding")
})

Deno.test("--firmware auto boots an image with an ESP with UEFI, and one without with BIOS", () =>
  runTest(Effect.gen(function* () {
    const { runs, layer } = yield* setUp({ console: [] })
    for (const image of ["web-uefi", "web"]) {
      yield* runImage({ ...request, image, firmware: "auto" }).pipe(Effect.provide(layer))
    }
    assert.deepEqual((yield* Ref.get(runs)).map((run) => run.firmware), ["uefi", "bios"])
  })))

Deno.test("a firmware asked for is used as it is, whatever the disk has", () =>
  runTest(Effect.gen(function* () {
    const { runs, layer } = yield* setUp({ console: [] })
    yield* runImage({ ...request, image: "web", firmware: "uefi", secureBoot: true }).pipe(
      Effect.provide(layer),
    )
    const [run] = yield* Ref.get(runs)
    assert.equal(run?.firmware, "uefi")
    assert.equal(run?.secureBoot, true)
  })))

Deno.test("--secure-boot on an image that auto finds BIOS fails before any VM starts", async () => {
  const { runs, cause } = await runTest(Effect.gen(function* () {
    const { runs, layer } = yield* setUp({ console: [] })
    const exit = yield* Effect.exit(
      runImage({ ...request, image: "web", firmware: "auto", secureBoot: true }).pipe(
        Effect.provide(layer),
      ),
    )
    return { runs: yield* Ref.get(runs), cause: exit._tag === "Failure" ? exit.cause : undefined }
  }))
  assert.deepEqual(runs, [])
  const error = Option.getOrThrow(Cause.failureOption(cause ?? Cause.empty))
  assert.equal(error._tag, "RunFailed")
  assert.match(error.message, /--secure-boot needs UEFI firmware, and web boots with BIOS/)
})
