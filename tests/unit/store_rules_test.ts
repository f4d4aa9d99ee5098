/**
 * The image store's pure rules (src/domain/image_name.ts, image_source.ts, store_record.ts):
 * names it refuses, where a missing image would come from, and when a record still counts.
 */
import assert from "node:assert/strict"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { checkImageName, compareImageNames } from "../../src/domain/image_name.ts"
import { fetchableSource } from "../../src/domain/image_source.ts"
import { type ImageSpec, parseImageSpec } from "../../src/domain/image_spec.ts"
import {
  currentRecord,
  storeRecordFileName,
  StoreRecordJson,
} from "../../src/domain/store_record.ts"

const spec = (text: string): ImageSpec => Either.getOrThrow(parseImageSpec(text))

Deno.test("image names: refused with the store's reason, listed by code unit", () => {
  assert.deepEqual(checkImageName("ok-name"), Either.right("ok-name"))
  const refused = Either.flip(checkImageName(".hidden"))
  assert.ok(Either.isRight(refused))
  assert.equal(refused.right._tag, "InvalidImageName")
  assert.equal(refused.right.message, "Invalid image name '.hidden' (it may not start with '.')")
  assert.deepEqual(["b", "a", "Z", "é"].sort(compareImageNames), ["Z", "a", "b", "é"])
})

Deno.test("a bare name is fetched from the Vagrant box it spells, or from nowhere", () => {
  assert.deepEqual(
    fetchableSource(spec("owner/box:v1.2")),
    Either.right({ _tag: "Vagrant", box: { box: "owner/box", version: "1.2" } }),
  )
  assert.deepEqual(
    fetchableSource(spec("x,file=/a.qcow2")),
    Either.right({ _tag: "File", path: "/a.qcow2" }),
  )
  const missing = Either.flip(fetchableSource(spec("plain")))
  assert.ok(Either.isRight(missing))
  assert.equal(missing.right._tag, "ImageNotFound")
  assert.equal(missing.right.image, "plain")
})

Deno.test("a store record counts only for the file it was made for, and only when it decodes", () => {
  const stamp = { size: 10, ino: 3, mtimeMs: 7 }
  const record = { ...stamp, identity: "sha256:x", notes: { layer: "sha256:y" } }
  assert.deepEqual(currentRecord(record, stamp), record)
  assert.deepEqual(currentRecord(record, { ...stamp, ino: 4 }), {})
  assert.deepEqual(currentRecord(undefined, stamp), {})
  const decode = Schema.decodeEither(StoreRecordJson)
  assert.deepEqual(decode(JSON.stringify(record)), Either.right(record))
  assert.ok(Either.isLeft(decode("{not json")))
  assert.ok(Either.isLeft(decode(JSON.stringify({ ...stamp, identity: 5 }))))
  assert.equal(storeRecordFileName("a-b"), "a%2Db.json")
})
