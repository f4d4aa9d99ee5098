/**
 * The identifiers a reproducible build derives: their shapes, their stability, and the
 * derivation checked against Python's hashlib and uuid.
 */
import assert from "node:assert/strict"
import * as Either from "effect/Either"
import {
  derivedUuid,
  ext4HashSeed,
  filesystemUuid,
  gptDiskGuid,
  gptPartitionGuid,
  mbrDiskId,
  parseSourceDateEpoch,
  vfatVolumeId,
} from "../../src/domain/reproducible_ids.ts"
import { systemProgram } from "../support/system_program.ts"

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const SEED = "3f".repeat(32)

Deno.test("derived ids have the shapes the tools take, and the same seed gives the same ids", () => {
  for (const id of [gptDiskGuid(SEED), gptPartitionGuid(SEED, 1), filesystemUuid(SEED, 2)]) {
    assert.match(id, UUID_V4)
  }
  assert.match(ext4HashSeed(SEED, 2), UUID_V4)
  assert.match(mbrDiskId(SEED), /^0x[0-9a-f]{8}$/)
  assert.match(vfatVolumeId(SEED, 1), /^[0-9a-f]{8}$/)
  assert.equal(gptDiskGuid(SEED), gptDiskGuid("3f".repeat(32)))
  assert.equal(filesystemUuid(SEED, 2), filesystemUuid(SEED, 2))
})

Deno.test("every id of a disk differs from the others, and another seed changes them all", () => {
  const ids = (seed: string) => [
    gptDiskGuid(seed),
    ...[1, 2, 3].flatMap((n) => [
      gptPartitionGuid(seed, n),
      filesystemUuid(seed, n),
      ext4HashSeed(seed, n),
    ]),
  ]
  const one = ids(SEED)
  assert.equal(new Set(one).size, one.length)
  const other = ids("40".repeat(32))
  assert.equal(one.filter((id) => other.includes(id)).length, 0)
  assert.notEqual(vfatVolumeId(SEED, 1), vfatVolumeId(SEED, 2))
  assert.notEqual(mbrDiskId(SEED), mbrDiskId("40".repeat(32)))
})

Deno.test("a derived UUID is the purpose's digest with the version 4 and variant bits set", () => {
  // Python's hashlib and uuid, independent of the module, shape the same digest.
  const python = new Deno.Command(systemProgram("python3"), {
    args: [
      "-c",
      "import hashlib,sys,uuid;" +
      "d=bytearray(hashlib.sha256(b'transient-id-1\\0'+sys.argv[1].encode()+b'\\0'+sys.argv[2].encode()).digest()[:16]);" +
      "d[6]=(d[6]&0x0f)|0x40;d[8]=(d[8]&0x3f)|0x80;print(uuid.UUID(bytes=bytes(d)))",
      SEED,
      "gpt-disk",
    ],
    stdout: "piped",
  }).outputSync()
  assert.ok(python.success)
  assert.equal(new TextDecoder().decode(python.stdout).trim(), derivedUuid(SEED, "gpt-disk"))
})

Deno.test("SOURCE_DATE_EPOCH: whole seconds since 1970; anything else is said to be wrong", () => {
  assert.deepEqual(parseSourceDateEpoch("0"), Either.right(0))
  assert.deepEqual(parseSourceDateEpoch("1700000000"), Either.right(1700000000))
  for (const bad of ["", "-1", "1.5", "17e8", " 1", "2023-01-01"]) {
    const parsed = parseSourceDateEpoch(bad)
    assert.ok(Either.isLeft(parsed), bad)
    assert.match(parsed.left, /is not a whole number of seconds since 1970/)
  }
  assert.ok(Either.isLeft(parseSourceDateEpoch("253402300800")))
})
