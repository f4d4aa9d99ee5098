/**
 * `--cache-from` as untrusted input, over the memory layers: two harnesses stand for two
 * machines sharing a registry cache. A remote layer is used only on the bytes it was made on
 * (taken from the registry from below when the local ones differ); one that names another parent
 * is refused with a warning, not kept, and its step runs here.
 */
import assert from "node:assert/strict"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { build } from "../../src/app/build.ts"
import { pushBuildCache } from "../../src/app/build_cache.ts"
import { CacheAnnotation } from "../../src/domain/oci_manifest.ts"
import { MemoryRegistries, RegistryMemory } from "../../src/layers/memory/registry_memory.ts"
import type { BuildResult } from "../../src/app/build.ts"
import { WorldFileSystem } from "../support/world_files.ts"
import { defaultOptions, type Harness, harness, planOf, withCacheFrom } from "./harness.ts"

const REGISTRY = "registry.example"
const CACHE = `${REGISTRY}/team/cache:main`
const scratch = (...steps: ReadonlyArray<string>) =>
  ["FROM scratch", "DISK 1 GB GPT", "PARTITION 1 FORMAT ext4 MOUNT /", ...steps].join("\n") + "\n"
const IMAGEFILE = scratch("RUN one", "RUN two")

const machine = () => {
  const h = harness()
  h.world.runScript = (command, guest) => {
    guest.writeFile(`/${command.replace(/\W/g, "_")}`, command)
    return { exitCode: 0 }
  }
  return h
}

const value = <A, E>(exit: Exit.Exit<A, E>): A => {
  if (Exit.isSuccess(exit)) return exit.value
  throw new Error(Cause.pretty(exit.cause))
}

/** Build `text` on `h`, with `--cache-from CACHE` when `registries` is given. */
const buildOn = async (h: Harness, text: string, registries?: MemoryRegistries) => {
  const layer = registries === undefined
    ? h.layer
    : withCacheFrom(h, [CACHE], RegistryMemory(registries))
  const from = h.report.events.length
  const boots = h.world.log.filter((entry) => entry.op === "boot").length
  const result: BuildResult = value(
    await Effect.runPromiseExit(
      build(planOf(text), defaultOptions("web", { force: true })).pipe(Effect.provide(layer)),
    ),
  )
  const events = h.report.events.slice(from)
  return {
    result,
    ran: events.flatMap((e) => e.event === "step-end" && e.cached === false ? [e.step] : []),
    warnings: events.flatMap((e) => e.event === "warning" ? [e.message] : []),
    booted: h.world.log.filter((entry) => entry.op === "boot").length > boots,
  }
}

/** Machine A builds IMAGEFILE and pushes its layers to CACHE. */
const pushedByA = async () => {
  const registries = new MemoryRegistries()
  const a = machine()
  const built = await buildOn(a, IMAGEFILE)
  value(
    await Effect.runPromiseExit(
      pushBuildCache(CACHE, built.result.layers).pipe(
        Effect.provide(
          Layer.mergeAll(a.layer, RegistryMemory(registries), WorldFileSystem(a.world)).pipe(
            Layer.provideMerge(Layer.merge(NodeContext.layer, FetchHttpClient.layer)),
          ),
        ),
      ),
    ),
  )
  return { registries, layers: built.result.layers }
}

/** Rewrite the cache map's layer descriptors with `edit`. */
const editMap = (
  registries: MemoryRegistries,
  edit: (
    layers: Array<{ digest: string; size: number; annotations: Record<string, string> }>,
  ) => void,
) => {
  const manifests = registries.repository(`${REGISTRY}/team/cache`).manifests
  const stored = manifests.get("main")
  assert.ok(stored)
  const json = JSON.parse(new TextDecoder().decode(stored.bytes))
  edit(json.layers)
  manifests.set("main", { ...stored, bytes: new TextEncoder().encode(JSON.stringify(json)) })
}

const fileOf = (h: Harness, path: string) => {
  const disk = h.world.disks.get(h.world.images.get("web") ?? "")
  const node = disk?.partitions[0]?.filesystem?.tree.get(path)
  return node?.kind === "file" ? new TextDecoder().decode(node.content) : undefined
}

/** The digests B's cache keeps under each key. */
const keptDigests = (h: Harness) =>
  [...h.world.files.entries()].flatMap(([path, text]) =>
    path.startsWith("/cache/layers/") && path.endsWith(".json") ? [JSON.parse(text).digest] : []
  )

Deno.test("--cache-from: where the local layers are other bytes, the registry's are taken from below", async () => {
  const { registries, layers } = await pushedByA()
  // Machine B built the first step itself: the same keys, other bytes.
  const b = machine()
  const own = await buildOn(b, scratch("RUN one"))
  assert.notEqual(own.result.layers[0]?.digest, layers[0]?.digest)

  const shared = await buildOn(b, IMAGEFILE, registries)
  assert.deepEqual(shared.ran, [], "every step served")
  assert.equal(shared.booted, false)
  // The whole chain is A's: no delta of A's sits on B's layers.
  assert.deepEqual(shared.result.layers.map((layer) => layer.digest), layers.map((l) => l.digest))
  assert.equal(fileOf(b, "/one"), "one")
  assert.equal(fileOf(b, "/two"), "two")
})

Deno.test("--cache-from: a layer served under another step's key is refused, not kept, and rebuilt", async () => {
  const { registries, layers } = await pushedByA()
  // RUN two's layer (made on RUN one's) served as RUN one's.
  editMap(registries, (descriptors) => {
    const [, one, two] = descriptors
    assert.ok(one && two)
    one.digest = two.digest
    one.size = two.size
  })
  const b = machine()
  const built = await buildOn(b, IMAGEFILE, registries)
  assert.ok(
    built.warnings.some((message) =>
      message.startsWith(`The build cache ${CACHE} was not used:`) &&
      message.includes("refused: its backing file is")
    ),
    built.warnings.join("\n"),
  )
  assert.deepEqual(built.ran, [4, 5], "RUN one and RUN two run here")
  assert.ok(!keptDigests(b).includes(layers[2]?.digest), "the poisoned layer is not kept")
  assert.equal(fileOf(b, "/one"), "one")
  assert.equal(fileOf(b, "/two"), "two")
  // The next build, without the registry, uses what B built.
  const again = await buildOn(b, IMAGEFILE)
  assert.deepEqual(again.ran, [])
  assert.equal(fileOf(b, "/two"), "two")
})

Deno.test("--cache-from: an entry whose parent digest is not the layer under it is not used", async () => {
  const { registries } = await pushedByA()
  editMap(registries, (descriptors) => {
    const two = descriptors[2]
    assert.ok(two)
    two.annotations[CacheAnnotation.parentDigest] = `sha256:${"9".repeat(64)}`
  })
  const b = machine()
  const built = await buildOn(b, IMAGEFILE, registries)
  assert.deepEqual(built.ran, [5], "RUN two runs here")
  assert.equal(fileOf(b, "/two"), "two")
})
