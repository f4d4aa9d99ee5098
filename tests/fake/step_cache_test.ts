/**
 * The step cache over the memory layers: keys, hits, invalidation, resume after a failure and
 * what INSPECT and --no-cache do, with no QEMU. (tests/e2e/cache_test.ts does the same for real.)
 */
import assert from "node:assert/strict"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { cachePlan, type KeyInputs } from "../../src/domain/step_keys.ts"
import { newTree, put } from "../../src/layers/memory/sim_fs.ts"
import { LayerCache } from "../../src/services/layer_cache.ts"
import { defaultOptions, type Harness, harness, planOf, runBuild } from "./harness.ts"

const scratch = (...lines: Array<string>) =>
  ["FROM scratch", "DISK 1 GB GPT", "PARTITION 1 FORMAT ext4 MOUNT /", ...lines].join("\n") + "\n"

const IMAGEFILE = scratch("COPY data.txt /data.txt", "RUN one", "RUN two")

/** Build `text` as `name`; the steps served from the cache and those that ran. */
const buildOnce = async (h: Harness, text: string, name: string, useCache = true) => {
  const from = h.report.events.length
  const boots = h.world.log.filter((entry) => entry.op === "boot").length
  const exit = await runBuild(h, text, defaultOptions(name, { force: true, useCache }))
  const events = h.report.events.slice(from)
  const ends = events.flatMap((event) => event.event === "step-end" ? [event] : [])
  return {
    exit,
    cached: ends.filter((event) => event.cached === true).map((event) => event.step),
    ran: ends.filter((event) => event.cached === false).map((event) => event.step),
    booted: h.world.log.filter((entry) => entry.op === "boot").length > boots,
  }
}

const ok = (exit: Exit.Exit<unknown, unknown>) =>
  assert.ok(Exit.isSuccess(exit), Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "")

const fileOf = (h: Harness, name: string, path: string) => {
  const disk = h.world.disks.get(h.world.images.get(name) ?? "")
  const node = disk?.partitions[0]?.filesystem?.tree.get(path)
  return node?.kind === "file" ? new TextDecoder().decode(node.content) : undefined
}

const writing = (h: Harness) => {
  h.world.runScript = (command, guest) => {
    guest.writeFile(`/${command.replace(/\W/g, "_")}`, command)
    return { exitCode: command.startsWith("fail") ? 3 : 0 }
  }
}

Deno.test("an unchanged rebuild is served whole by the cache: no VM, the same files", async () => {
  const h = harness({ "data.txt": "data\n" })
  writing(h)
  const first = await buildOnce(h, IMAGEFILE, "first")
  ok(first.exit)
  assert.deepEqual(first.ran, [1, 2, 3, 4, 5, 6])
  const second = await buildOnce(h, IMAGEFILE, "second")
  ok(second.exit)
  assert.deepEqual(second.cached, [1, 2, 3, 4, 5, 6])
  assert.equal(second.booted, false)
  assert.equal(fileOf(h, "second", "/data.txt"), "data\n")
  assert.equal(fileOf(h, "second", "/two"), "two")
  assert.equal(h.report.events.filter((e) => e.event === "step-start").length, 12)
})

Deno.test("a COPY source's new content reruns from that step; a RUN's new text from it", async () => {
  const h = harness({ "data.txt": "data\n" })
  writing(h)
  ok((await buildOnce(h, IMAGEFILE, "v1")).exit)
  put(h.tree, "/data.txt", {
    kind: "file",
    content: new TextEncoder().encode("other\n"),
    mode: 0o644,
    uid: 1000,
    gid: 1000,
  })
  const content = await buildOnce(h, IMAGEFILE, "v2")
  ok(content.exit)
  assert.deepEqual(content.cached, [1, 2, 3])
  assert.deepEqual(content.ran, [4, 5, 6])
  assert.equal(fileOf(h, "v2", "/data.txt"), "other\n")

  const text = await buildOnce(h, scratch("COPY data.txt /data.txt", "RUN one", "RUN three"), "v3")
  ok(text.exit)
  assert.deepEqual(text.cached, [1, 2, 3, 4, 5])
  assert.deepEqual(text.ran, [6])
  assert.equal(fileOf(h, "v3", "/three"), "three")
  assert.equal(fileOf(h, "v3", "/two"), undefined)
})

Deno.test("keys: content, text, the guest and the base move them; spacing and keyword case do not", () => {
  const plan = planOf(IMAGEFILE)
  const inputs: KeyInputs = { artifacts: "guest-a", sources: new Map([["data.txt", "digest-1"]]) }
  const keys = (p = plan, i = inputs) => cachePlan(p, i).layers.map((layer) => layer.key)
  const base = keys()
  assert.equal(base.length, 4, "the prelude, COPY, RUN, RUN")
  assert.equal(new Set(base).size, 4)
  // Spacing and keyword case are not part of a step's meaning.
  assert.deepEqual(
    keys(planOf(IMAGEFILE.replace("RUN one", "run   one").replace("FROM scratch", "from scratch"))),
    base,
  )
  const content = keys(plan, { ...inputs, sources: new Map([["data.txt", "digest-2"]]) })
  assert.deepEqual(content.slice(0, 1), base.slice(0, 1))
  assert.notEqual(content[1], base[1])
  assert.notEqual(content[3], base[3], "a changed parent changes every key after it")
  const guest = keys(plan, { ...inputs, artifacts: "guest-b" })
  assert.ok(guest.every((key, i) => key !== base[i]), "other guest artifacts, other keys")
  const fromBase = (identity: string) =>
    keys(planOf("FROM base\nRUN one\n"), { artifacts: "g", base: identity, sources: new Map() })
  assert.notDeepEqual(fromBase("sha256:aa"), fromBase("sha256:bb"))
  // INSPECT ends caching: it and what follows are not layers.
  const inspected = cachePlan(planOf(scratch("RUN one", "INSPECT", "RUN two")), inputs)
  assert.equal(inspected.layers.length, 2)
  assert.deepEqual(inspected.uncached.map((step) => step.index), [5, 6])
})

Deno.test("a failed RUN keeps the layers before it: the fixed build starts at that step", async () => {
  const h = harness({ "data.txt": "data\n" })
  writing(h)
  const failed = await buildOnce(h, scratch("COPY data.txt /data.txt", "RUN one", "RUN fail"), "r")
  assert.ok(Exit.isFailure(failed.exit))
  const fixed = await buildOnce(h, IMAGEFILE, "r")
  ok(fixed.exit)
  assert.deepEqual(fixed.cached, [1, 2, 3, 4, 5])
  assert.deepEqual(fixed.ran, [6])
  assert.equal(fileOf(h, "r", "/one"), "one")
  assert.equal(fileOf(h, "r", "/two"), "two")
})

Deno.test("a different base image reruns everything; the same base is served", async () => {
  const h = harness()
  writing(h)
  const baseDisk = () => {
    const tree = newTree()
    put(tree, "/etc/fstab", {
      kind: "file",
      content: new TextEncoder().encode("/dev/sda1 / ext4 defaults 0 1\n"),
      mode: 0o644,
      uid: 0,
      gid: 0,
    })
    return {
      sizeBytes: 1 << 26,
      table: "gpt" as const,
      partitions: [{
        layout: {
          number: 1,
          startSector: 2048,
          sizeSectors: 1000,
          type: "linux" as const,
          bootable: false,
        },
        filesystem: { fs: "ext4" as const, options: [], tree },
      }],
    }
  }
  h.world.disks.set("/store/base", baseDisk())
  h.world.images.set("base", "/store/base")
  const text = "FROM base\nRUN one\n"
  ok((await buildOnce(h, text, "x1")).exit)
  const same = await buildOnce(h, text, "x2")
  ok(same.exit)
  assert.deepEqual(same.cached, [1, 2])
  // The store's file replaced by another image under the same name.
  h.world.disks.set("/store/base", baseDisk())
  const other = await buildOnce(h, text, "x3")
  ok(other.exit)
  assert.deepEqual(other.ran, [1, 2])
})

Deno.test("--no-cache runs every step and its layers serve the next build; a deleted layer is rebuilt", async () => {
  const h = harness({ "data.txt": "data\n" })
  writing(h)
  ok((await buildOnce(h, IMAGEFILE, "n1")).exit)
  const fresh = await buildOnce(h, IMAGEFILE, "n2", false)
  ok(fresh.exit)
  assert.deepEqual(fresh.cached, [])
  const next = await buildOnce(h, IMAGEFILE, "n3")
  ok(next.exit)
  assert.deepEqual(next.ran, [])

  // The files --no-cache replaced stay until a prune, once no build stands on them.
  const replaced = [...h.world.disks.keys()].filter((path) => path.startsWith("/cache/layers/"))
  assert.equal(replaced.length, 8, "the replaced files are kept until a prune")
  await Effect.runPromise(
    Effect.flatMap(LayerCache, (cache) => cache.prune({ all: false })).pipe(
      Effect.provide(h.layer),
    ),
  )
  const layers = [...h.world.disks.keys()].filter((path) => path.startsWith("/cache/layers/"))
  assert.equal(layers.length, 4, "the prelude, COPY, RUN one, RUN two")
  // The layer of RUN one: deleting it costs that step and the one after.
  const tree = (path: string) => h.world.disks.get(path)?.partitions[0]?.filesystem?.tree
  const runOne = layers.find((path) =>
    tree(path)?.get("/one") !== undefined && tree(path)?.get("/two") === undefined
  )
  assert.ok(runOne)
  h.world.disks.delete(runOne)
  const rebuilt = await buildOnce(h, IMAGEFILE, "n4")
  ok(rebuilt.exit)
  assert.deepEqual(rebuilt.cached, [1, 2, 3, 4])
  assert.deepEqual(rebuilt.ran, [5, 6])
})

Deno.test("INSPECT ends caching: the steps before it are served, it and those after it run", async () => {
  const h = harness({ "data.txt": "data\n" })
  writing(h)
  const text = scratch("COPY data.txt /data.txt", "INSPECT", "RUN two")
  const interactive = { force: true, interactive: true }
  ok(await runBuild(h, text, defaultOptions("i1", interactive)))
  const from = h.report.events.length
  ok(await runBuild(h, text, defaultOptions("i2", interactive)))
  const ends = h.report.events.slice(from).flatMap((e) => e.event === "step-end" ? [e] : [])
  assert.deepEqual(ends.filter((e) => e.cached).map((e) => e.step), [1, 2, 3, 4])
  assert.deepEqual(ends.filter((e) => !e.cached).map((e) => e.step), [5, 6])
  assert.equal(fileOf(h, "i2", "/two"), "two")
})
