/**
 * The LayerCache contract, run against both implementations: LayerCacheMemory (what tests/fake
 * builds on) and LayerCacheDirectory over a temporary directory with qemu-img. Every case asserts
 * the same layers and counts for both: hits on empty, partial and full chains, keeping, listing,
 * pruning, and records that are corrupt.
 */
import assert from "node:assert/strict"
import { createHash } from "node:crypto"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { cloneDisk, DiskImagesMemory } from "../../src/layers/memory/disk_images_memory.ts"
import { diskDigest } from "../../src/layers/memory/disk_bytes.ts"
import { LayerCacheMemory } from "../../src/layers/memory/layer_cache_memory.ts"
import { newTree, put } from "../../src/layers/memory/sim_fs.ts"
import { MemoryWorld } from "../../src/layers/memory/world.ts"
import { LayerCacheDirectory } from "../../src/layers/cache/layer_cache_directory.ts"
import { DiskImagesQemu } from "../../src/layers/qemu/disk_images_qemu.ts"
import { DiskImages } from "../../src/services/disk_images.ts"
import {
  type CachedLayer,
  type FinishedLayer,
  LayerCache,
  type LayerCacheShape,
} from "../../src/services/layer_cache.ts"
import { runTest } from "../support/effect.ts"
import { warningsReporter } from "../support/warnings_reporter.ts"

const MiB = 1024 * 1024
const BASE = { path: "/store/base", identity: `sha256:${"0".repeat(64)}` }
const OTHER_BASE = { path: "/store/other", identity: `sha256:${"1".repeat(64)}` }

/** One implementation, fresh, rooted at `root`. */
interface Subject {
  readonly layer: Layer.Layer<LayerCache | DiskImages, unknown>
  /** Write a layer's file at `path`, with some content, as a build's steps would. */
  readonly writeLayer: (path: string) => Effect.Effect<void, unknown, DiskImages>
  /** Overwrite the record of `key` with `text`, as a crash or a hand edit would. */
  readonly writeRecord: (key: string, text: string) => Promise<void>
  readonly readRecord: (key: string) => Promise<string>
  /** Put another valid layer file where `path` is, as a restored or tampered cache would. */
  readonly swapLayer: (path: string) => Effect.Effect<void, unknown, DiskImages>
  readonly exists: (path: string) => Promise<boolean>
  readonly removeFile: (path: string) => Effect.Effect<void>
  /**
   * Make the layer at `path` name `backing` as its backing file, and move it to the name of its
   * new digest, which is returned.
   */
  readonly plantBacking: (
    path: string,
    backing: string,
  ) => Effect.Effect<string, unknown, DiskImages>
  /** The warnings the cache gave. */
  readonly warnings: Array<string>
}

/** The path of a layer file once its digest is `digest`. */
const renamed = (path: string, digest: string) =>
  path.replace(/[0-9a-f]{64}\.qcow2$/, `${digest.slice("sha256:".length)}.qcow2`)

const implementations: Record<string, (root: string) => Subject> = {
  memory: (root) => {
    const world = new MemoryWorld()
    const warnings: Array<string> = []
    return {
      warnings,
      layer: Layer.merge(LayerCacheMemory(world, root), DiskImagesMemory(world)).pipe(
        Layer.provide(warningsReporter((message) => warnings.push(message))),
      ),
      writeLayer: (path) =>
        Effect.sync(() => {
          const tree = newTree()
          put(tree, "/data", {
            kind: "file",
            content: new Uint8Array(4096),
            mode: 0o644,
            uid: 0,
            gid: 0,
          })
          world.disks.set(path, {
            sizeBytes: MiB,
            partitions: [{
              layout: {
                number: 1,
                startSector: 2048,
                sizeSectors: 1024,
                type: "linux",
                bootable: false,
              },
              filesystem: { fs: "ext4", options: [], tree },
            }],
          })
        }),
      writeRecord: (key, text) =>
        Promise.resolve(void world.files.set(`${root}/layers/${key}.json`, text)),
      readRecord: (key) => Promise.resolve(world.files.get(`${root}/layers/${key}.json`) ?? ""),
      swapLayer: (path) =>
        Effect.sync(() => {
          const disk = world.disks.get(path)
          if (disk !== undefined) world.disks.set(path, cloneDisk(disk))
        }),
      exists: (path) => Promise.resolve(world.disks.has(path)),
      removeFile: (path) => Effect.sync(() => void world.disks.delete(path)),
      plantBacking: (path, backing) =>
        Effect.sync(() => {
          const disk = world.disks.get(path)
          if (disk === undefined) return ""
          disk.backing = backing
          const digest = diskDigest(disk)
          world.disks.delete(path)
          world.disks.set(renamed(path, digest), disk)
          return digest
        }),
    }
  },
  directory: (root) => {
    const warnings: Array<string> = []
    // Each file its own size: no two layers of a test have the same bytes.
    let written = 0
    return {
      warnings,
      layer: Layer.provideMerge(LayerCacheDirectory(root), DiskImagesQemu).pipe(
        Layer.provide(
          Layer.merge(NodeContext.layer, warningsReporter((message) => warnings.push(message))),
        ),
      ),
      writeLayer: (path) =>
        Effect.flatMap(
          DiskImages,
          (disks) => disks.create({ path, sizeBytes: MiB + 65536 * ++written }),
        ),
      writeRecord: (key, text) => Deno.writeTextFile(`${root}/layers/${key}.json`, text),
      readRecord: (key) => Deno.readTextFile(`${root}/layers/${key}.json`),
      swapLayer: (path) =>
        Effect.gen(function* () {
          const other = `${path}.other`
          yield* (yield* DiskImages).create({ path: other, sizeBytes: 3 * MiB })
          yield* Effect.promise(() => Deno.rename(other, path))
        }),
      exists: (path) => Deno.lstat(path).then(() => true, () => false),
      removeFile: (path) => Effect.promise(() => Deno.remove(path)),
      plantBacking: (path, backing) =>
        Effect.gen(function* () {
          yield* Effect.promise(() => Deno.chmod(path, 0o644))
          yield* (yield* DiskImages).rebase({ path, backing })
          const bytes = yield* Effect.promise(() => Deno.readFile(path))
          const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`
          yield* Effect.promise(() => Deno.rename(path, renamed(path, digest)))
          return digest
        }),
    }
  },
}

type Body = (
  cache: LayerCacheShape,
  context: {
    readonly root: string
    readonly subject: Subject
    /** Finished layers for `keys`, written in a workspace of this test. */
    readonly finish: (
      ...keys: ReadonlyArray<string>
    ) => Effect.Effect<ReadonlyArray<FinishedLayer>, unknown, DiskImages>
  },
) => Effect.Effect<void, unknown, DiskImages | Scope.Scope>

/** Register `body` as a test of each implementation. */
const contract = (name: string, body: Body) => {
  for (const [implementation, make] of Object.entries(implementations)) {
    Deno.test(`LayerCache (${implementation}): ${name}`, async () => {
      const root = await Deno.makeTempDir({ prefix: "cache-contract-" })
      try {
        const subject = make(root)
        await runTest(
          Effect.gen(function* () {
            const cache = yield* LayerCache
            const workspace = yield* cache.workspace
            let written = 0
            const finish = (...keys: ReadonlyArray<string>) =>
              Effect.forEach(keys, (key) =>
                Effect.gen(function* () {
                  const path = `${workspace}/${++written}.qcow2`
                  yield* subject.writeLayer(path)
                  return { key, text: `RUN step ${key.slice(0, 4)}`, path }
                }))
            yield* body(cache, { root, subject, finish })
          }).pipe(Effect.scoped, Effect.provide(subject.layer)),
        )
      } finally {
        await Deno.remove(root, { recursive: true })
      }
    })
  }
}

const key = (char: string) => char.repeat(64)
const [A, B, C, D, X, Y] = ["a", "b", "c", "d", "e", "f"].map(key) as [
  string,
  string,
  string,
  string,
  string,
  string,
]
const keysOf = (layers: ReadonlyArray<{ readonly key: string }>) => layers.map((layer) => layer.key)

/** Wall-clock time passes (the directory cache dates uses by mtime). */
const later = Effect.sleep("15 millis")

contract(
  "an empty cache has no hits, no layers, nothing to prune",
  (cache) =>
    Effect.gen(function* () {
      assert.deepEqual(yield* cache.hits([A, B], BASE), [])
      assert.deepEqual(yield* cache.list, [])
      assert.deepEqual(yield* cache.prune({ all: true }), { removed: 0, freedBytes: 0 })
    }),
)

contract(
  "hits are the longest usable prefix of a kept chain",
  (cache, { root, finish }) =>
    Effect.gen(function* () {
      const kept = yield* cache.keep(undefined, yield* finish(A, B, C), {
        replace: false,
        base: BASE,
      })
      assert.deepEqual(keysOf(kept), [A, B, C])
      assert.deepEqual(kept.map((layer) => layer.parent), [undefined, A, B])
      // Each file named by its digest.
      assert.deepEqual(
        kept.map((layer) => layer.path),
        kept.map((layer) => `${root}/layers/${layer.digest.slice("sha256:".length)}.qcow2`),
      )

      const full = yield* cache.hits([A, B, C], BASE)
      assert.deepEqual(full, kept)
      assert.deepEqual(keysOf(yield* cache.hits([A, B, X, C], BASE)), [A, B])
      assert.deepEqual(keysOf(yield* cache.hits([A, B, C, D], BASE)), [A, B, C])
      // Not a first layer, or on another base: nothing.
      assert.deepEqual(yield* cache.hits([B, C], BASE), [])
      assert.deepEqual(yield* cache.hits([A, B, C], OTHER_BASE), [])
      assert.deepEqual(yield* cache.hits([A, B, C]), [])
    }),
)

contract(
  "keeping stops at a key held on the same parent, unless replacing",
  (cache, { finish }) =>
    Effect.gen(function* () {
      const [a] = yield* cache.keep(undefined, yield* finish(A, B), { replace: false, base: BASE })
      assert.deepEqual(
        yield* cache.keep(undefined, yield* finish(A, D), { replace: false, base: BASE }),
        [],
      )
      assert.deepEqual(
        yield* cache.keep(a as CachedLayer, yield* finish(B, D), { replace: false }),
        [],
      )
      // Invalid keys are never kept.
      assert.deepEqual(
        yield* cache.keep(undefined, yield* finish("not-a-key"), { replace: false }),
        [],
      )

      const replaced = yield* cache.keep(undefined, yield* finish(A), { replace: true, base: BASE })
      assert.deepEqual(keysOf(replaced), [A])
      assert.notEqual(replaced[0]?.id, a?.id)
      // B was kept on the old write of A: it no longer counts.
      assert.deepEqual(keysOf(yield* cache.hits([A, B], BASE)), [A])
      const more = yield* cache.keep(replaced[0], yield* finish(B), { replace: false })
      assert.deepEqual(keysOf(more), [B])
      assert.deepEqual(keysOf(yield* cache.hits([A, B], BASE)), [A, B])
    }),
)

contract(
  "list shows each layer, the most recently used first",
  (cache, { finish }) =>
    Effect.gen(function* () {
      yield* cache.keep(undefined, yield* finish(A, B), { replace: false, base: BASE })
      yield* later
      yield* cache.keep(undefined, yield* finish(X), { replace: false, base: BASE })
      yield* later
      yield* cache.hits([A], BASE)
      const entries = yield* cache.list
      assert.deepEqual(keysOf(entries), [A, X, B])
      assert.deepEqual(entries.map((entry) => entry.parent), [undefined, undefined, A])
      assert.deepEqual(
        entries.map((entry) => entry.text),
        [A, X, B].map((k) => `RUN step ${k.slice(0, 4)}`),
      )
      assert.ok(
        entries.every((entry) => entry.sizeBytes > 0 && entry.createdMs > 0),
      )
    }),
)

contract(
  "prune removes the least recently used, deeper first, until the rest fit",
  (cache, { finish }) =>
    Effect.gen(function* () {
      yield* cache.keep(undefined, yield* finish(X), { replace: false, base: BASE })
      yield* cache.keep(undefined, yield* finish(Y), { replace: false, base: BASE })
      yield* cache.keep(undefined, yield* finish(A, B), { replace: false, base: BASE })
      for (const keys of [[X], [Y], [A, B]]) {
        yield* later
        yield* Effect.scoped(cache.hits(keys, BASE))
      }
      assert.deepEqual(yield* cache.prune({ all: false }), { removed: 0, freedBytes: 0 })
      const sizes = new Map((yield* cache.list).map((entry) => [entry.key, entry.sizeBytes]))
      const size = (k: string) => sizes.get(k) ?? 0
      // Room for all but X, the least recently used.
      const first = yield* cache.prune({ all: false, keepBytes: size(Y) + size(A) + size(B) })
      assert.deepEqual(first, { removed: 1, freedBytes: size(X) })
      assert.deepEqual(new Set(keysOf(yield* cache.list)), new Set([A, B, Y]))
      // A and B were used together: the child goes before its parent.
      const second = yield* cache.prune({ all: false, keepBytes: size(A) + size(B) })
      assert.deepEqual(second, { removed: 1, freedBytes: size(Y) })
      const third = yield* cache.prune({ all: false, keepBytes: size(A) })
      assert.deepEqual(third, { removed: 1, freedBytes: size(B) })
      assert.deepEqual(keysOf(yield* cache.list), [A])
      assert.deepEqual(keysOf(yield* Effect.scoped(cache.hits([A, B], BASE))), [A])
      assert.deepEqual(yield* cache.prune({ all: true }), { removed: 1, freedBytes: size(A) })
      assert.deepEqual(yield* cache.list, [])
      assert.deepEqual(yield* Effect.scoped(cache.hits([A], BASE)), [])
    }),
)

contract(
  "a corrupt record is no layer: the chain stops before it",
  (cache, { subject, finish }) =>
    Effect.gen(function* () {
      yield* cache.keep(undefined, yield* finish(A, B, C), { replace: false, base: BASE })
      yield* Effect.promise(() => subject.writeRecord(B, "{not json"))
      assert.deepEqual(keysOf(yield* cache.hits([A, B, C], BASE)), [A])
      assert.deepEqual(new Set(keysOf(yield* cache.list)), new Set([A, C]))
      yield* Effect.promise(() => subject.writeRecord(B, JSON.stringify({ key: B, id: 5 })))
      assert.deepEqual(keysOf(yield* cache.hits([A, B, C], BASE)), [A])
      // A record under another key's name is not that key's.
      yield* Effect.promise(() =>
        subject.writeRecord(C, JSON.stringify({ key: A, id: "x", text: "", createdMs: 0 }))
      )
      assert.deepEqual(new Set(keysOf(yield* cache.list)), new Set([A]))
      // Kept again, B counts again (on the A that is there).
      const [a] = yield* cache.hits([A], BASE)
      assert.deepEqual(keysOf(yield* cache.keep(a, yield* finish(B), { replace: false })), [B])
      assert.deepEqual(keysOf(yield* cache.hits([A, B, C], BASE)), [A, B])
    }),
)

contract(
  "a layer whose file was swapped is a miss with a warning, and is removed",
  (cache, { subject, finish }) =>
    Effect.gen(function* () {
      const kept = yield* cache.keep(undefined, yield* finish(A, B, C), {
        replace: false,
        base: BASE,
      })
      const b = kept[1] as CachedLayer
      yield* subject.swapLayer(b.path)
      assert.deepEqual(keysOf(yield* cache.hits([A, B, C], BASE)), [A])
      assert.equal(subject.warnings.length, 1)
      assert.match(
        subject.warnings[0] ?? "",
        /^The cached layer bbbbbbbbbbbb \(RUN step bbbb\) is not used and was removed: its file is not the one it was kept with/,
      )
      assert.equal(yield* Effect.promise(() => subject.exists(b.path)), false)
      assert.deepEqual(new Set(keysOf(yield* cache.list)), new Set([A, C]))
      // Built again, it counts again; C was made on the old B and does not.
      const [a] = yield* cache.hits([A], BASE)
      assert.deepEqual(keysOf(yield* cache.keep(a, yield* finish(B), { replace: false })), [B])
      assert.deepEqual(keysOf(yield* cache.hits([A, B, C], BASE)), [A, B])
    }),
)

contract(
  "a chain is cut where a layer's parent digest is not the digest of the layer under it",
  (cache, { subject, finish }) =>
    Effect.gen(function* () {
      const kept = yield* cache.keep(undefined, yield* finish(A, B, C), {
        replace: false,
        base: BASE,
      })
      assert.deepEqual(kept.map((layer) => layer.parentDigest), [
        BASE.identity,
        kept[0]?.digest,
        kept[1]?.digest,
      ])
      assert.ok(kept.every((layer) => /^sha256:[0-9a-f]{64}$/.test(layer.digest)))
      assert.equal(new Set(kept.map((layer) => layer.digest)).size, 3)
      const record = JSON.parse(yield* Effect.promise(() => subject.readRecord(B)))
      yield* Effect.promise(() =>
        subject.writeRecord(
          B,
          JSON.stringify({ ...record, parentDigest: `sha256:${"9".repeat(64)}` }),
        )
      )
      assert.deepEqual(keysOf(yield* cache.hits([A, B, C], BASE)), [A])
      // The same layers on a base of another identity: none.
      assert.deepEqual(
        yield* cache.hits([A], { path: BASE.path, identity: OTHER_BASE.identity }),
        [],
      )
    }),
)

contract(
  "a replaced key gets a new file; the old one lives while a build holds it",
  (cache, { subject, finish }) =>
    Effect.gen(function* () {
      yield* cache.keep(undefined, yield* finish(A, B), { replace: false, base: BASE })
      const old = yield* Effect.scoped(Effect.gen(function* () {
        const [a, b] = yield* cache.hits([A, B], BASE)
        const replaced = yield* cache.keep(undefined, yield* finish(A, B), {
          replace: true,
          base: BASE,
        })
        assert.deepEqual(keysOf(replaced), [A, B])
        assert.notEqual(replaced[0]?.path, a?.path)
        assert.notEqual(replaced[1]?.path, b?.path)
        // Neither a prune nor `prune --all` removes what a build stands on.
        yield* cache.prune({ all: false, keepBytes: 0 })
        yield* cache.prune({ all: true })
        for (const layer of [a, b]) {
          assert.ok(yield* Effect.promise(() => subject.exists(layer?.path ?? "")), layer?.key)
        }
        return [a?.path ?? "", b?.path ?? ""]
      }))
      // Released: the next prune takes them.
      yield* cache.prune({ all: false })
      for (const path of old) assert.equal(yield* Effect.promise(() => subject.exists(path)), false)
    }),
)

contract(
  "a layer whose header names another file is refused, even when its record agrees",
  (cache, { subject, finish }) =>
    Effect.gen(function* () {
      const kept = yield* cache.keep(undefined, yield* finish(A, B), { replace: false, base: BASE })
      const b = kept[1] as CachedLayer
      // A cache restored with a planted layer and a record made to match it.
      const digest = yield* subject.plantBacking(b.path, "/etc/hostname")
      const record = JSON.parse(yield* Effect.promise(() => subject.readRecord(B)))
      const { stamp: _, ...unstamped } = record
      yield* Effect.promise(() => subject.writeRecord(B, JSON.stringify({ ...unstamped, digest })))
      assert.deepEqual(keysOf(yield* cache.hits([A, B], BASE)), [A])
      assert.equal(subject.warnings.length, 1)
      assert.match(
        subject.warnings[0] ?? "",
        /its backing file is "\/etc\/hostname", not "[0-9a-f]{64}\.qcow2"/,
      )
      assert.deepEqual(keysOf(yield* cache.list), [A])
    }),
)

contract(
  "a record whose layer file is gone is no layer: the step is kept again",
  (cache, { subject, finish }) =>
    Effect.gen(function* () {
      const kept = yield* cache.keep(undefined, yield* finish(A, B), { replace: false, base: BASE })
      yield* subject.removeFile((kept[1] as CachedLayer).path)
      const [a] = yield* cache.hits([A, B], BASE)
      assert.deepEqual(keysOf([a as CachedLayer]), [A])
      assert.deepEqual(keysOf(yield* cache.keep(a, yield* finish(B), { replace: false })), [B])
      assert.deepEqual(keysOf(yield* cache.hits([A, B], BASE)), [A, B])
      assert.deepEqual(new Set(keysOf(yield* cache.list)), new Set([A, B]))
    }),
)
