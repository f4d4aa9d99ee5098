/**
 * The step cache's pure rules (src/domain/layer_record.ts, prune.ts): which layers form a usable
 * chain, when keeping stops, and the order layers are pruned in.
 */
import assert from "node:assert/strict"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as LayerRecord from "../../src/domain/layer_record.ts"
import { pruneOrder } from "../../src/domain/prune.ts"

const a = LayerRecord.newRecord({ key: "a", text: "RUN a" }, undefined, "/base", "id-a", 1)
const b = LayerRecord.newRecord({ key: "b", text: "RUN b" }, a, undefined, "id-b", 2)
const c = LayerRecord.newRecord({ key: "c", text: "RUN c" }, b, undefined, "id-c", 3)
const records = new Map<string, LayerRecord.LayerRecord>(
  [a, b, c].map((record) => [record.key, record]),
)
const chain = (keys: ReadonlyArray<string>, base?: string) =>
  LayerRecord.usableChain(keys, base, (key) => records.get(key)).map((record) => record.key)

Deno.test("a new record names its parent's key and write, or its base when first", () => {
  assert.deepEqual(a, { key: "a", base: "/base", id: "id-a", text: "RUN a", createdMs: 1 })
  assert.deepEqual(b, {
    key: "b",
    parent: "a",
    parentId: "id-a",
    id: "id-b",
    text: "RUN b",
    createdMs: 2,
  })
  const roundTrip = Schema.decodeEither(LayerRecord.LayerRecordJson)(
    Schema.encodeSync(LayerRecord.LayerRecordJson)(b),
  )
  assert.deepEqual(roundTrip, Either.right(b))
  assert.ok(Either.isLeft(Schema.decodeEither(LayerRecord.LayerRecordJson)('{"key":"b"}')))
})

Deno.test("the usable chain is the longest prefix of children on the given base", () => {
  assert.deepEqual(chain(["a", "b", "c"], "/base"), ["a", "b", "c"])
  assert.deepEqual(chain(["a", "b", "x", "c"], "/base"), ["a", "b"])
  assert.deepEqual(chain(["a", "c"], "/base"), ["a"])
  assert.deepEqual(chain(["b", "c"], "/base"), [])
  assert.deepEqual(chain(["a"], "/other"), [])
  assert.deepEqual(chain([], "/base"), [])
  // A record filed under another key does not count for it.
  assert.deepEqual(LayerRecord.usableChain(["x"], "/base", () => a), [])
})

Deno.test("keeping stops at a layer held on the same write of the parent, unless replacing", () => {
  assert.equal(LayerRecord.alreadyKept(b, { id: "id-a" }, false), true)
  assert.equal(LayerRecord.alreadyKept(b, { id: "id-a" }, true), false)
  assert.equal(LayerRecord.alreadyKept(b, { id: "id-a2" }, false), false)
  assert.equal(LayerRecord.alreadyKept(a, undefined, false), true)
  assert.equal(LayerRecord.alreadyKept(undefined, undefined, false), false)
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
