/**
 * Which firmware an image needs, from the first bytes of its disk (src/domain/firmware.ts): GPT
 * and MBR tables built byte by byte here, as the partitioning tools lay them out.
 */
import assert from "node:assert/strict"
import { bootFacts, detectFirmware, FIRMWARE_HEAD_BYTES } from "../../src/domain/firmware.ts"

const ESP = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
const LINUX = "0fc63daf-8483-4772-8e79-3d69d8477de4"
const BIOS_BOOT = "21686148-6449-6e6f-744e-656564454649"

/** A GUID as GPT stores it: the first three fields little-endian. */
const guidBytes = (guid: string): Uint8Array => {
  const hex = guid.replaceAll("-", "")
  const bytes = Uint8Array.from(hex.match(/../g)!.map((pair) => parseInt(pair, 16)))
  return Uint8Array.from([
    ...bytes.subarray(0, 4).reverse(),
    ...bytes.subarray(4, 6).reverse(),
    ...bytes.subarray(6, 8).reverse(),
    ...bytes.subarray(8),
  ])
}

const signed = (head: Uint8Array) => {
  head[510] = 0x55
  head[511] = 0xaa
  return head
}

/** A GPT disk's head: protective MBR, header at LBA 1, `types` as entries from LBA 2. */
const gptDisk = (types: ReadonlyArray<string>, options: { bootCode?: boolean } = {}) => {
  const head = signed(new Uint8Array(FIRMWARE_HEAD_BYTES))
  head[446 + 4] = 0xee
  if (options.bootCode) head.set([0xeb, 0x63, 0x90], 0)
  head.set(new TextEncoder().encode("EFI PART"), 512)
  const view = new DataView(head.buffer)
  view.setBigUint64(512 + 72, 2n, true)
  view.setUint32(512 + 80, 128, true)
  view.setUint32(512 + 84, 128, true)
  types.forEach((type, index) => head.set(guidBytes(type), 1024 + index * 128))
  return head
}

/** An MBR disk's head with partitions of the given type bytes. */
const mbrDisk = (types: ReadonlyArray<number>, options: { bootCode?: boolean } = {}) => {
  const head = signed(new Uint8Array(FIRMWARE_HEAD_BYTES))
  if (options.bootCode) head.set([0xeb, 0x63, 0x90], 0)
  types.forEach((type, index) => head[446 + index * 16 + 4] = type)
  return head
}

Deno.test("a GPT disk with an ESP and no boot code needs UEFI", () => {
  const head = gptDisk([ESP, LINUX])
  assert.deepEqual(bootFacts(head), { table: "gpt", efiSystemPartition: true, biosBootCode: false })
  assert.equal(detectFirmware(head), "uefi")
})

Deno.test("an ESP found as a later GPT entry counts", () => {
  assert.equal(detectFirmware(gptDisk([BIOS_BOOT, LINUX, ESP])), "uefi")
})

Deno.test("a GPT disk with GRUB's BIOS boot code boots with BIOS, ESP or not", () => {
  assert.equal(detectFirmware(gptDisk([BIOS_BOOT, LINUX], { bootCode: true })), "bios")
  assert.equal(detectFirmware(gptDisk([ESP, LINUX], { bootCode: true })), "bios")
})

Deno.test("a GPT disk without an ESP boots with BIOS", () => {
  assert.equal(detectFirmware(gptDisk([LINUX])), "bios")
})

Deno.test("an MBR disk needs UEFI only with a type 0xEF partition and no boot code", () => {
  assert.equal(detectFirmware(mbrDisk([0xef, 0x83])), "uefi")
  assert.equal(bootFacts(mbrDisk([0xef, 0x83])).table, "mbr")
  assert.equal(detectFirmware(mbrDisk([0xef, 0x83], { bootCode: true })), "bios")
  assert.equal(detectFirmware(mbrDisk([0x83], { bootCode: true })), "bios")
})

Deno.test("a disk without a partition table boots with BIOS", () => {
  const empty = new Uint8Array(FIRMWARE_HEAD_BYTES)
  assert.deepEqual(bootFacts(empty), {
    table: "none",
    efiSystemPartition: false,
    biosBootCode: false,
  })
  assert.equal(detectFirmware(empty), "bios")
  assert.equal(detectFirmware(new Uint8Array(100)), "bios")
})

Deno.test("GPT entries beyond the bytes read are not invented", () => {
  // An entry array said to start past the end of the head: nothing is found, nothing is read.
  const head = gptDisk([ESP])
  new DataView(head.buffer).setBigUint64(512 + 72, 1000n, true)
  assert.equal(detectFirmware(head), "bios")
})
