/**
 * The step cache's pure rules (src/domain/layer_record.ts, prune.ts): which layers form a usable
 * chain, when keeping stops, and the order layers are pruned in.
 */
import assert from "node:assert/strict"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as LayerRecord from "../../src/domain/layer_record.ts"
import { pruneOrder } from "../../src/domain/prune.ts"

const BASE = `sha256:${"0".repeat(64)}`
const digest = (c: string) => `sha256:${c.repeat(64)}`
const written = (id: string, c: string, createdMs: number) => ({ id, digest: digest(c), createdMs })
const a = LayerRecord.newRecord(
  { key: "a", text: "RUN a" },
  undefined,
  BASE,
  written("id-a", "a", 1),
)
const b = LayerRecord.newRecord({ key: "b", text: "RUN b" }, a, undefined, written("id-b", "b", 2))
const c = LayerRecord.newRecord({ key: "c", text: "RUN c" }, b, undefined, written("id-c", "c", 3))
const records = new Map<string, LayerRecord.LayerRecord>(
  [a, b, c].map((record) => [record.key, record]),
)
const chain = (keys: ReadonlyArray<string>, base?: string) =>
  LayerRecord.usableChain(keys, base, (key) => records.get(key)).map((record) => record.key)

Deno.test("a new record names its parent's key, write and digest, or its base when first", () => {
  assert.deepEqual(a, {
    key: "a",
    id: "id-a",
    digest: digest("a"),
    parentDigest: BASE,
    text: "RUN a",
    createdMs: 1,
  })
  assert.deepEqual(b, {
    key: "b",
    parent: "a",
    parentId: "id-a",
    id: "id-b",
    digest: digest("b"),
    parentDigest: digest("a"),
    text: "RUN b",
    createdMs: 2,
  })
  const roundTrip = Schema.decodeEither(LayerRecord.LayerRecordJson)(
    Schema.encodeSync(LayerRecord.LayerRecordJson)(b),
  )
  assert.deepEqual(roundTrip, Either.right(b))
  assert.ok(Either.isLeft(Schema.decodeEither(LayerRecord.LayerRecordJson)('{"key":"b"}')))
  // A record of the format before digests is no record.
  const { digest: _, ...undigested } = b
  assert.ok(
    Either.isLeft(Schema.decodeEither(LayerRecord.LayerRecordJson)(JSON.stringify(undigested))),
  )
})

Deno.test("the usable chain is the longest prefix of children on the given base", () => {
  assert.deepEqual(chain(["a", "b", "c"], BASE), ["a", "b", "c"])
  assert.deepEqual(chain(["a", "b", "x", "c"], BASE), ["a", "b"])
  assert.deepEqual(chain(["a", "c"], BASE), ["a"])
  assert.deepEqual(chain(["b", "c"], BASE), [])
  assert.deepEqual(chain(["a"], `sha256:${"1".repeat(64)}`), [])
  assert.deepEqual(chain(["a"]), [])
  assert.deepEqual(chain([], BASE), [])
  // A record filed under another key does not count for it.
  assert.deepEqual(LayerRecord.usableChain(["x"], BASE, () => a), [])
})

Deno.test("a chain stops where a parent digest is not the digest of the layer under it", () => {
  const other = { ...b, parentDigest: digest("f") }
  assert.deepEqual(
    LayerRecord.usableChain(["a", "b", "c"], BASE, (key) => key === "b" ? other : records.get(key))
      .map((record) => record.key),
    ["a"],
  )
  assert.equal(LayerRecord.continuesChain(b, "b", a, BASE), true)
  assert.equal(LayerRecord.continuesChain(b, "b", { ...a, digest: digest("e") }, BASE), false)
  assert.equal(LayerRecord.continuesChain(a, "a", undefined, digest("1")), false)
})

Deno.test("a layer's file is hashed again only when its stamp changed", () => {
  const stamp = { size: 10, ino: 7, mtimeMs: 100 }
  const stamped = { ...b, stamp }
  assert.equal(LayerRecord.needsHashing(stamped, stamp), false)
  assert.equal(LayerRecord.needsHashing(stamped, { ...stamp, size: 9 }), true)
  assert.equal(LayerRecord.needsHashing(stamped, { ...stamp, ino: 8 }), true)
  assert.equal(LayerRecord.needsHashing(stamped, { ...stamp, mtimeMs: 101 }), true)
  assert.equal(LayerRecord.needsHashing(b, stamp), true)
})

Deno.test("a layer's backing name is its parent's file, its base's link, or none", () => {
  assert.equal(LayerRecord.layerFileName(digest("a")), `${"a".repeat(64)}.qcow2`)
  assert.deepEqual(LayerRecord.expectedBacking(a, BASE), { backing: `${"a".repeat(64)}.qcow2` })
  assert.deepEqual(LayerRecord.expectedBacking(undefined, BASE), {
    backing: `base-sha256-${"0".repeat(64)}.qcow2`,
  })
  assert.deepEqual(
    LayerRecord.expectedBacking(undefined, "layer:1b2c3d4e-0000-4000-8000-000000000000"),
    {
      backing: "base-layer-1b2c3d4e-0000-4000-8000-000000000000.qcow2",
    },
  )
  assert.deepEqual(LayerRecord.expectedBacking(undefined, undefined), { backing: undefined })
  assert.equal(LayerRecord.expectedBacking(undefined, "../../etc/passwd"), undefined)
})

Deno.test("keeping stops at a layer held on the same write of the parent, unless replacing", () => {
  assert.equal(LayerRecord.alreadyKept(b, a, undefined, false), true)
  assert.equal(LayerRecord.alreadyKept(b, a, undefined, true), false)
  assert.equal(LayerRecord.alreadyKept(b, { ...a, id: "id-a2" }, undefined, false), false)
  assert.equal(LayerRecord.alreadyKept(b, { ...a, digest: digest("e") }, undefined, false), false)
  assert.equal(LayerRecord.alreadyKept(a, undefined, BASE, false), true)
  assert.equal(LayerRecord.alreadyKept(a, undefined, undefined, false), false)
  assert.equal(LayerRecord.alreadyKept(undefined, undefined, undefined, false), false)
  assert.equal(LayerRecord.isLayerKey("0".repeat(64)), true)
  assert.equal(LayerRecord.isLayerKey("../x"), false)
  assert.equal(LayerRecord.isLayerKey("A".repeat(64)), false)
})

Deno.test("prune: everything, nothing without a limit, else least recently used and deeper first", () => {
  const layers = [
    { key: "old", sizeBytes: 10, lastUsedMs: 1 },
    { key: "parent", sizeBytes: 10, lastUsedMs: 5 },
    { key: "child", parent: "parent", sizeBytes: 10, lastUsedMs: 5 },
    { key: "new", sizeBytes: 10, lastUsedMs: 9 },
  ]
  const keys = (limit: Parameters<typeof pruneOrder>[1]) =>
    pruneOrder(layers, limit).map((layer) => layer.key)
  assert.deepEqual(keys({ all: true }), ["old", "parent", "child", "new"])
  assert.deepEqual(keys({ all: false }), [])
  assert.deepEqual(keys({ all: false, keepBytes: 40 }), [])
  assert.deepEqual(keys({ all: false, keepBytes: 30 }), ["old"])
  assert.deepEqual(keys({ all: false, keepBytes: 20 }), ["old", "child"])
  assert.deepEqual(keys({ all: false, keepBytes: 5 }), ["old", "child", "parent", "new"])
})
