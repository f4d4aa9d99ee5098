/**
 * The firmware an image boots with, read from the start of its disk: UEFI when it has an EFI
 * system partition (ESP) and no BIOS boot code, else BIOS. Boot code in the MBR means a BIOS
 * bootloader (GRUB's boot.img, syslinux's mbr.bin) was installed; a disk with both boots either
 * way, and BIOS is what every machine has. Pure.
 */

export type Firmware = "bios" | "uefi"

export const FIRMWARES: ReadonlyArray<Firmware> = ["bios", "uefi"]

const SECTOR = 512

/**
 * How many leading bytes of a disk the detection reads: the MBR, the GPT header and 128
 * partition entries of 128 bytes (the most that tools write), with room to spare.
 */
export const FIRMWARE_HEAD_BYTES = 64 * 1024

/** The bootstrap code area of an MBR: everything before the disk signature. */
const BOOT_CODE_BYTES = 440

const MBR_ENTRIES = 446
const MBR_TYPE_GPT_PROTECTIVE = 0xee
const MBR_TYPE_ESP = 0xef

/** C12A7328-F81F-11D2-BA4B-00A0C93EC93B, as GPT stores it (the first three fields little-endian). */
const ESP_TYPE_GUID = [
  0x28,
  0x73,
  0x2a,
  0xc1,
  0x1f,
  0xf8,
  0xd2,
  0x11,
  0xba,
  0x4b,
  0x00,
  0xa0,
  0xc9,
  0x3e,
  0xc9,
  0x3b,
]

/** What the start of a disk says about how it boots. */
export interface BootFacts {
  readonly table: "gpt" | "mbr" | "none"
  /** An EFI system partition is in the partition table. */
  readonly efiSystemPartition: boolean
  /** The MBR's bootstrap code area holds code (a BIOS bootloader's first stage). */
  readonly biosBootCode: boolean
}

const mbrTypes = (head: Uint8Array): ReadonlyArray<number> =>
  [0, 1, 2, 3].map((entry) => head[MBR_ENTRIES + entry * 16 + 4] ?? 0)

/** Whether a GPT's entries (as far as `head` holds them) include an ESP. */
const gptHasEsp = (head: Uint8Array): boolean => {
  if (head.length < 2 * SECTOR) return false
  const header = head.subarray(SECTOR, 2 * SECTOR)
  if (String.fromCharCode(...header.subarray(0, 8)) !== "EFI PART") return false
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength)
  const entriesAt = Number(view.getBigUint64(72, true)) * SECTOR
  const count = view.getUint32(80, true)
  const size = view.getUint32(84, true)
  if (size < 16) return false
  for (let entry = 0; entry < count; entry++) {
    const offset = entriesAt + entry * size
    if (offset + 16 > head.length) return false
    if (ESP_TYPE_GUID.every((byte, at) => head[offset + at] === byte)) return true
  }
  return false
}

/** Read the boot facts from `head`, the first bytes of a disk (FIRMWARE_HEAD_BYTES suffice). */
export const bootFacts = (head: Uint8Array): BootFacts => {
  const signed = head.length >= SECTOR && head[510] === 0x55 && head[511] === 0xaa
  if (!signed) return { table: "none", efiSystemPartition: false, biosBootCode: false }
  const biosBootCode = head.subarray(0, BOOT_CODE_BYTES).some((byte) => byte !== 0)
  const types = mbrTypes(head)
  if (types.includes(MBR_TYPE_GPT_PROTECTIVE)) {
    return { table: "gpt", efiSystemPartition: gptHasEsp(head), biosBootCode }
  }
  return { table: "mbr", efiSystemPartition: types.includes(MBR_TYPE_ESP), biosBootCode }
}

/** UEFI for a disk with an ESP and no BIOS boot code; BIOS for everything else. */
export const firmwareOf = (facts: BootFacts): Firmware =>
  facts.efiSystemPartition && !facts.biosBootCode ? "uefi" : "bios"

/** The firmware the disk whose first bytes are `head` needs. */
export const detectFirmware = (head: Uint8Array): Firmware => firmwareOf(bootFacts(head))
