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
import { ImageStoreMemory } from "../../src/layers/memory/image_store_memory.ts"
import { type MemoryVm, VmRunnerMemory } from "../../src/layers/memory/vm_runner_memory.ts"
import { MemoryWorld } from "../../src/layers/memory/world.ts"
import type { RunOptions } from "../../src/services/vm_runner.ts"
import { runFailure, runTest } from "../support/effect.ts"

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
    const runs = yield* Ref.make<ReadonlyArray<RunOptions>>([])
    const layer = Layer.mergeAll(VmRunnerMemory(vm, runs), ImageStoreMemory(world), files)
    return { runs, layer }
  })

const request = {
  accel: "tcg" as const,
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
