/**
 * ADD of a container image through whole builds on the memory layers: its layers applied in
 * order, whiteouts honoured, the manifest digest as the step's cache key, where the image came
 * from recorded, and its failures told at their place.
 */
import assert from "node:assert/strict"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { ImageStore } from "../../src/services/image_store.ts"
import { defaultOptions, type Harness, harness, makeTar, runBuild } from "./harness.ts"

const SOURCE = "docker://registry.example/team/base:1"

const imagefile = (source = SOURCE) =>
  [
    "FROM scratch",
    "DISK 1 GB GPT",
    "PARTITION 1 FORMAT ext4 MOUNT /",
    `ADD ${source} /`,
    "RUN true",
  ].join("\n")

/** Two layers: the second deletes a file of the first and adds one. */
const twoLayers = async () => [
  await makeTar({ "etc/os-release": "ID=test\n", "etc/motd": "hello\n", "bin/sh": "#!sh" }),
  await makeTar({ "etc/.wh.motd": "", "etc/hostname": "base\n" }),
]

const succeeded = <A>(exit: Exit.Exit<A, unknown>) =>
  assert.ok(Exit.isSuccess(exit), Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "")

const failureOf = <A>(exit: Exit.Exit<A, unknown>) => {
  assert.ok(Exit.isFailure(exit), "the build failed")
  const failure = Cause.failureOption(exit.cause)
  assert.ok(Option.isSome(failure), `a typed failure, got ${Cause.pretty(exit.cause)}`)
  return failure.value as { _tag: string; message: string }
}

const rootTree = (h: Harness, name: string) => {
  const disk = h.world.disks.get(h.world.images.get(name)!)!
  return disk.partitions.find((p) => p.layout.number === 1)!.filesystem!.tree
}

const applied = (h: Harness) =>
  h.world.log.flatMap((op) => op.op === "apply-layer" ? [op.layer] : [])

Deno.test("ADD of a container image applies its layers in order, whiteouts included", async () => {
  const h = harness()
  h.containerImages.images.set(SOURCE, [{
    layers: await twoLayers(),
    config: { env: ["PATH=/usr/bin"], cmd: ["sh"] },
  }])
  succeeded(await runBuild(h, imagefile(), defaultOptions("from-container")))
  const tree = rootTree(h, "from-container")
  assert.equal(tree.get("/etc/os-release")?.kind, "file")
  assert.equal(tree.get("/etc/hostname")?.kind, "file")
  assert.equal(tree.get("/bin/sh")?.kind, "file")
  assert.equal(tree.has("/etc/motd"), false, "the second layer's whiteout removed it")
  assert.equal(tree.has("/etc/.wh.motd"), false, "a whiteout is never created")
  const layers = applied(h)
  assert.equal(layers.length, 2)
  // Each layer is shown as it streams: its bytes, uncompressed, once it is done.
  const shown = h.report.events.flatMap((event) =>
    event.event === "progress" && event.done === true ? [[event.label, event.bytes]] : []
  )
  assert.deepEqual(shown.map(([label]) => String(label).replace(/\(sha256:\w+\)/, "(…)")), [
    `Layer 1/2 of ${SOURCE} (…)`,
    `Layer 2/2 of ${SOURCE} (…)`,
  ])
  assert.ok(shown.every(([, bytes]) => Number(bytes) >= 1024), JSON.stringify(shown))
  // The layers as the image lists them: lowest first.
  assert.deepEqual(
    h.containerImages.log.filter((line) => line.startsWith("open")),
    layers.map((digest) => `open ${digest}`),
  )
})

Deno.test("the manifest digest keys the step: an unchanged image is a cache hit, a changed one runs again", async () => {
  const h = harness()
  const [lower, upper] = await twoLayers()
  h.containerImages.images.set(SOURCE, [{ layers: [lower!, upper!] }])
  succeeded(await runBuild(h, imagefile(), defaultOptions("first")))
  assert.equal(applied(h).length, 2)

  succeeded(await runBuild(h, imagefile(), defaultOptions("second")))
  assert.equal(applied(h).length, 2, "the cached ADD did not apply its layers again")

  // The tag now names another image: one more layer.
  const extra = await makeTar({ "etc/issue": "Test\n" })
  h.containerImages.images.set(SOURCE, [{ layers: [lower!, upper!, extra] }])
  succeeded(await runBuild(h, imagefile(), defaultOptions("third")))
  assert.equal(applied(h).length, 5, "the moved tag ran ADD again, all three layers")
  assert.equal(rootTree(h, "third").get("/etc/issue")?.kind, "file")
})

Deno.test("the image's record says where it came from: digest, platform, config", async () => {
  const h = harness()
  h.containerImages.images.set(SOURCE, [{
    layers: await twoLayers(),
    config: { env: ["PATH=/usr/bin"], workingDir: "/srv", cmd: ["sh"] },
  }])
  succeeded(
    await runBuild(
      h,
      imagefile(),
      defaultOptions("recorded", { imagefileDigest: "sha256:" + "ab".repeat(32) }),
    ),
  )
  const provenance = await Effect.runPromise(
    Effect.gen(function* () {
      const store = yield* ImageStore
      const [image] = (yield* store.list).filter((image) => image.name === "recorded")
      return yield* store.provenance(image!)
    }).pipe(Effect.provide(h.layer)),
  )
  const [origin] = provenance?.containerImages ?? []
  assert.equal(origin?.source, SOURCE)
  assert.match(origin?.digest ?? "", /^sha256:[0-9a-f]{64}$/)
  assert.equal(origin?.platform, "linux/amd64")
  assert.deepEqual(origin?.config, { env: ["PATH=/usr/bin"], workingDir: "/srv", cmd: ["sh"] })
})

Deno.test("a missing image fails before anything starts, at its place in the Imagefile", async () => {
  const h = harness()
  const exit = await runBuild(h, imagefile(), defaultOptions("missing"))
  const failure = failureOf(exit)
  assert.equal(failure._tag, "ContainerSourceFailed")
  assert.match(failure.message, /^Imagefile:4:5: ADD docker:\/\/registry\.example\/team\/base:1: /)
  assert.equal(h.world.ops().includes("boot"), false, "no VM was started")
  assert.deepEqual([...h.world.images.keys()], [])
})

Deno.test("a corrupt layer fails its step, naming it, and publishes nothing", async () => {
  const h = harness()
  h.containerImages.images.set(SOURCE, [{ layers: await twoLayers() }])
  // The digests are the memory registry's: resolve once to learn the upper layer's.
  succeeded(await runBuild(h, imagefile(), defaultOptions("good")))
  const [, upper] = applied(h)
  h.containerImages.corrupt.add(upper!)
  const exit = await runBuild(h, imagefile(), defaultOptions("bad", { useCache: false }))
  const failure = failureOf(exit)
  assert.equal(failure._tag, "StepFailed")
  assert.match(failure.message, /^Step 4\/5 : ADD docker:\/\/registry\.example\/team\/base:1 /)
  assert.ok(failure.message.includes(upper!), failure.message)
  assert.equal(h.world.images.has("bad"), false)
  assert.equal(h.world.openSessions, 0)
})

Deno.test("--platform picks the index's entry; a missing one lists those present", async () => {
  const h = harness()
  const [lower] = await twoLayers()
  const arm = await makeTar({ "etc/arch": "arm64\n" })
  h.containerImages.images.set(SOURCE, [
    { layers: [lower!] },
    { platform: { os: "linux", architecture: "arm64", variant: undefined }, layers: [arm] },
  ])
  succeeded(
    await runBuild(
      h,
      imagefile(),
      defaultOptions("arm", {
        platform: { os: "linux", architecture: "arm64", variant: undefined },
      }),
    ),
  )
  assert.equal(rootTree(h, "arm").get("/etc/arch")?.kind, "file")
  const exit = await runBuild(
    h,
    imagefile(),
    defaultOptions("riscv", {
      platform: { os: "linux", architecture: "riscv64", variant: undefined },
    }),
  )
  const failure = failureOf(exit)
  assert.match(failure.message, /linux\/riscv64/)
  assert.match(failure.message, /linux\/amd64, linux\/arm64/)
})
