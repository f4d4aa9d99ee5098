/**
 * A step-cache layer's backing name rewritten in its qcow2 header, pure: on headers laid out as
 * QEMU writes them, the new name is what the layer probe reads, the old one leaves no trace, and
 * every header a plain rename would not cover is left to qemu-img (undefined).
 */
import assert from "node:assert/strict"
import { probeLayer, withBackingName } from "../../src/domain/image_format.ts"

const CLUSTER_BITS = 16
const BACKING_FORMAT = 0xe2792aca

interface HeaderOptions {
  readonly version?: 2 | 3
  readonly backing?: string
  readonly backingFormat?: string | undefined
  readonly incompatible?: bigint
  readonly compatible?: bigint
  readonly autoclear?: bigint
  readonly clusterBits?: number
  readonly l1TableOffset?: bigint
  /** Where the name goes; after the extensions when absent. */
  readonly nameOffset?: number
  /** Leave out the end of the extensions. */
  readonly unterminated?: boolean
}

/** A qcow2 header as QEMU lays it out: fields, extensions, then the backing name. */
const header = (options: HeaderOptions = {}): Uint8Array => {
  const version = options.version ?? 3
  const bytes = new Uint8Array(64 * 1024)
  const view = new DataView(bytes.buffer)
  bytes.set([0x51, 0x46, 0x49, 0xfb])
  view.setUint32(4, version)
  view.setUint32(20, options.clusterBits ?? CLUSTER_BITS)
  view.setBigUint64(24, 256n * 1024n * 1024n)
  view.setBigUint64(40, options.l1TableOffset ?? 0x30000n)
  view.setBigUint64(48, 0x10000n)
  view.setUint32(56, 1)
  const headerLength = version === 3 ? 112 : 72
  if (version === 3) {
    view.setBigUint64(72, options.incompatible ?? 0n)
    view.setBigUint64(80, options.compatible ?? 0n)
    view.setBigUint64(88, options.autoclear ?? 0n)
    view.setUint32(96, 4)
    view.setUint32(100, headerLength)
  }
  let offset = headerLength
  const format = "backingFormat" in options ? options.backingFormat : "qcow2"
  if (format !== undefined) {
    view.setUint32(offset, BACKING_FORMAT)
    view.setUint32(offset + 4, format.length)
    bytes.set(new TextEncoder().encode(format), offset + 8)
    offset += 8 + Math.ceil(format.length / 8) * 8
  }
  if (options.unterminated) bytes.fill(0xff, offset)
  else offset += 8 // the end marker: type 0, length 0
  const backing = options.backing ?? "/work/1234.0f0f0f0f-aaaa-bbbb-cccc-dddddddddddd/disk-3.qcow2"
  const nameOffset = options.nameOffset ?? offset
  view.setBigUint64(8, BigInt(nameOffset))
  view.setUint32(16, backing.length)
  bytes.set(new TextEncoder().encode(backing), nameOffset)
  return bytes
}

/** The first bytes of the file once `rewritten` is written at its start. */
const applied = (head: Uint8Array, rewritten: Uint8Array) => {
  const file = head.slice()
  file.set(rewritten)
  return file
}

const PARENT = `${"a".repeat(64)}.qcow2`

Deno.test("a layer's header names its parent's file once rewritten, and the probe takes it", () => {
  for (const version of [2, 3] as const) {
    const head = header({ version })
    const rewritten = withBackingName(head, PARENT)
    assert.ok(rewritten !== undefined, `qcow2 v${version} was not rewritten`)
    const file = applied(head, rewritten)
    assert.deepEqual(probeLayer(file, PARENT), { _tag: "Accepted", format: "qcow2" })
    assert.equal(probeLayer(head, PARENT)._tag, "Refused")
  }
})

Deno.test("a shorter name leaves nothing of the old one; a longer one fits after it", () => {
  const old = "/a/work/path/that/is/longer/than/the/new/name/disk-7.qcow2"
  const head = header({ backing: old })
  const file = applied(head, withBackingName(head, "p.qcow2")!)
  const nameOffset = Number(new DataView(file.buffer).getBigUint64(8))
  assert.equal(new DataView(file.buffer).getUint32(16), "p.qcow2".length)
  assert.deepEqual([...file.subarray(nameOffset + 7, nameOffset + old.length)], [
    ...new Uint8Array(old.length - 7),
  ])
  const short = header({ backing: "x.qcow2" })
  const longer = applied(short, withBackingName(short, PARENT)!)
  assert.deepEqual(probeLayer(longer, PARENT), { _tag: "Accepted", format: "qcow2" })
  // Only the fields and the name are written: the bytes after the longer name are the file's.
  assert.equal(withBackingName(short, PARENT)!.length, nameOffset + PARENT.length)
})

Deno.test("what a plain rename would not cover is left to qemu-img", () => {
  const cases: Record<string, Uint8Array> = {
    "no backing file": (() => {
      const head = header()
      new DataView(head.buffer).setBigUint64(8, 0n)
      return head
    })(),
    "a raw backing file": header({ backingFormat: "raw" }),
    "no backing format": header({ backingFormat: undefined }),
    "dirty (refcounts to repair)": header({ incompatible: 1n }),
    "an external data file": header({ incompatible: 4n }),
    "lazy refcounts": header({ compatible: 1n }),
    "bitmaps": header({ autoclear: 1n }),
    "extensions without an end": header({ unterminated: true }),
    "a name before the extensions end": header({ nameOffset: 104, backing: "x".repeat(8) }),
    "the L1 table in the header's cluster": header({ l1TableOffset: 0x200n }),
    "encrypted": (() => {
      const head = header()
      new DataView(head.buffer).setUint32(32, 1)
      return head
    })(),
    "not qcow2": new Uint8Array(64 * 1024),
  }
  for (const [what, head] of Object.entries(cases)) {
    assert.equal(withBackingName(head, PARENT), undefined, what)
  }
  // A name past the header's cluster (512 bytes here), or one QEMU would not read.
  const small = header({ clusterBits: 9, l1TableOffset: 0x30000n })
  assert.equal(withBackingName(small, "n".repeat(400)), undefined)
  assert.ok(withBackingName(small, "n.qcow2") !== undefined)
  assert.equal(withBackingName(header(), "n".repeat(1024)), undefined)
  assert.equal(withBackingName(header(), "naïve.qcow2"), undefined)
  assert.equal(withBackingName(header(), ""), undefined)
  // A head cut short of where the new name ends.
  const head = header()
  assert.equal(withBackingName(head.subarray(0, 200), PARENT), undefined)
})
