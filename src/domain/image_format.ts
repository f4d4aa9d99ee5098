/**
 * The strict format probe of pulled images. The store holds raw and qcow2 images only, and a
 * pulled file is opened as the format its first bytes prove, never as QEMU would guess: a guess
 * can read a descriptor (VMDK), a `json:` name or an external data file, and so pull a host
 * file into an image. A qcow2 that refers to any other file is refused here, from its header.
 */

/** How many leading bytes the probe reads. */
export const PROBE_BYTES = 64 * 1024

const SECTOR = 512

export type ImageFormat = "raw" | "qcow2"

export type Probe =
  | { readonly _tag: "Accepted"; readonly format: ImageFormat }
  | { readonly _tag: "Refused"; readonly reason: string }

const refused = (reason: string): Probe => ({ _tag: "Refused", reason })

const ascii = (bytes: Uint8Array, offset: number, length: number) =>
  String.fromCharCode(...bytes.subarray(offset, offset + length))

/** Formats QEMU reads that the store does not take, by their magic at offset 0. */
const FOREIGN_MAGIC: ReadonlyArray<readonly [string, string]> = [
  ["KDMV", "VMDK"],
  ["# Disk DescriptorFile", "VMDK (descriptor)"],
  ["conectix", "VHD"],
  ["vhdxfile", "VHDX"],
  ["QED\0", "QED"],
  ["LUKS\xba\xbe", "LUKS"],
  ["WithoutFreeSpace", "Parallels"],
  ["WithouFreSpacExt", "Parallels"],
  ["cxsparse", "VHD (sparse)"],
  ["json:", "a json: file name"],
]

const QCOW_MAGIC = "QFI\xfb"

/** qcow2 incompatible feature bits (header version 3). */
const INCOMPATIBLE_EXTERNAL_DATA = 1n << 2n
const KNOWN_INCOMPATIBLE = 0b11111n

/** Header extension types that name other files. */
const EXTENSION_EXTERNAL_DATA = 0x44415441
const EXTENSION_END = 0
/** The header extension that names the backing file's format. */
const EXTENSION_BACKING_FORMAT = 0xe2792aca

/**
 * The qcow2 header checks: no external data file, no encryption, and no backing file unless
 * `backing` (a step-cache layer, whose backing name its user rewrites before opening it).
 */
const probeQcow2 = (head: Uint8Array, backing = false): Probe => {
  if (head.length < 72) return refused("its qcow2 header is cut short")
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength)
  const version = view.getUint32(4)
  if (version !== 2 && version !== 3) return refused(`it is qcow version ${version}, not qcow2`)
  if (!backing && view.getBigUint64(8) !== 0n) return refused("it refers to a backing file")
  if (view.getUint32(32) !== 0) return refused("it is encrypted")
  let headerLength = 72
  if (version === 3) {
    if (head.length < 104) return refused("its qcow2 header is cut short")
    const incompatible = view.getBigUint64(72)
    if ((incompatible & INCOMPATIBLE_EXTERNAL_DATA) !== 0n) {
      return refused("it keeps its data in an external file")
    }
    if ((incompatible & ~KNOWN_INCOMPATIBLE) !== 0n) {
      return refused("it uses qcow2 features this probe does not know")
    }
    headerLength = view.getUint32(100)
  }
  // The header extensions follow the header: none may name a file.
  for (let offset = headerLength; offset + 8 <= head.length;) {
    const type = view.getUint32(offset)
    const length = view.getUint32(offset + 4)
    if (type === EXTENSION_END) return { _tag: "Accepted", format: "qcow2" }
    if (type === EXTENSION_EXTERNAL_DATA) return refused("it names an external data file")
    offset += 8 + Math.ceil(length / 8) * 8
  }
  return refused("its qcow2 header extensions do not end within the first 64 KiB")
}

/**
 * A qcow2 step-cache layer, before anything opens it: a qcow2 whose backing name is exactly
 * `backing` (its parent's file in the cache) or, when undefined, none; nothing else that names a
 * file.
 */
export const probeLayer = (head: Uint8Array, backing: string | undefined): Probe => {
  if (ascii(head, 0, 4) !== QCOW_MAGIC) return refused("it is not a qcow2 image")
  const probe = probeQcow2(head, true)
  if (probe._tag === "Refused") return probe
  const named = backingName(head)
  if (named === undefined) return refused("its backing file name is not within its header")
  if (backing === undefined) {
    return named === "" ? probe : refused(`it refers to a backing file (${JSON.stringify(named)})`)
  }
  return named === backing ? probe : refused(
    `its backing file is ${JSON.stringify(named)}, not ${JSON.stringify(backing)}`,
  )
}

/** The backing file name a qcow2 header names ("" for none); undefined past `head`'s end. */
const backingName = (head: Uint8Array): string | undefined => {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength)
  const offset = view.getBigUint64(8)
  const length = view.getUint32(16)
  if (offset === 0n) return ""
  if (offset + BigInt(length) > BigInt(head.length) || length > 1023) return undefined
  return ascii(head, Number(offset), length)
}

/** The longest backing file name QEMU reads. */
const BACKING_NAME_MAX = 1023

/**
 * The first bytes of a qcow2 whose header starts `head`, once its backing file is named `backing`
 * (printable ASCII) in place: the bytes `qemu-img rebase -u -F qcow2` writes, to be written at
 * offset 0. Undefined unless renaming is all that rebase would change: a qcow2 (v2 or v3, no
 * encryption, no feature bit set: not dirty, no bitmaps) that already names a qcow2 backing file
 * after its header extensions, where the new name also fits in the header's cluster, which
 * nothing else shares, and in `head`.
 */
export const withBackingName = (head: Uint8Array, backing: string): Uint8Array | undefined => {
  if (!/^[\x20-\x7e]+$/.test(backing) || backing.length > BACKING_NAME_MAX) return undefined
  if (head.length < 104 || ascii(head, 0, 4) !== QCOW_MAGIC) return undefined
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength)
  const version = view.getUint32(4)
  if (version !== 2 && version !== 3) return undefined
  const nameOffset = view.getBigUint64(8)
  const nameLength = view.getUint32(16)
  const clusterBits = view.getUint32(20)
  if (nameOffset === 0n || clusterBits < 9 || clusterBits > 21) return undefined
  const clusterSize = 1 << clusterBits
  if (view.getUint32(32) !== 0) return undefined
  // The L1 and refcount tables and the snapshots live in later clusters, never in the header's.
  const tables = [view.getBigUint64(40), view.getBigUint64(48)]
  if (view.getUint32(60) !== 0) tables.push(view.getBigUint64(64))
  if (tables.some((offset) => offset < BigInt(clusterSize))) return undefined
  // Features (v3) that opening the file read-write would act on: dirty refcounts to repair,
  // bitmaps to mark in use, lazy refcounts, and any this rewrite does not know.
  const features = [72, 80, 88].map((offset) => version === 3 ? view.getBigUint64(offset) : 0n)
  if (features.some((bits) => bits !== 0n)) return undefined
  const headerLength = version === 3 ? view.getUint32(100) : 72
  const limit = Math.min(head.length, clusterSize)
  let backingFormat: string | undefined
  let extensionsEnd: number | undefined
  for (let offset = headerLength; offset + 8 <= limit;) {
    const type = view.getUint32(offset)
    const length = view.getUint32(offset + 4)
    if (type === EXTENSION_END) {
      extensionsEnd = offset + 8
      break
    }
    if (type === EXTENSION_BACKING_FORMAT && offset + 8 + length <= limit) {
      backingFormat = ascii(head, offset + 8, length)
    }
    offset += 8 + Math.ceil(length / 8) * 8
  }
  if (extensionsEnd === undefined || backingFormat !== "qcow2") return undefined
  const start = Number(nameOffset)
  const end = start + Math.max(nameLength, backing.length)
  if (nameOffset < BigInt(extensionsEnd) || end > limit) return undefined
  const rewritten = head.slice(0, end)
  new DataView(rewritten.buffer).setUint32(16, backing.length)
  rewritten.fill(0, start, end)
  for (let at = 0; at < backing.length; at++) rewritten[start + at] = backing.charCodeAt(at)
  return rewritten
}

/** Whether `head` starts like a raw disk: a partition table or a filesystem we know. */
const looksLikeRawDisk = (head: Uint8Array): boolean => {
  const mbr = head.length >= SECTOR && head[510] === 0x55 && head[511] === 0xaa
  const ext = head.length >= 1082 && head[1080] === 0x53 && head[1081] === 0xef
  const xfs = ascii(head, 0, 4) === "XFSB"
  const iso = head.length >= 32774 && ascii(head, 32769, 5) === "CD001"
  return mbr || ext || xfs || iso
}

/**
 * Decide the format of a pulled file from its first bytes (`head`, up to PROBE_BYTES) and its
 * size: qcow2 when its header says so and refers to no other file, raw when it begins with a
 * partition table or a filesystem; anything else is refused, with the reason.
 */
export const probeImageFormat = (head: Uint8Array, size: number): Probe => {
  if (size === 0) return refused("it is empty")
  if (ascii(head, 0, 4) === QCOW_MAGIC) return probeQcow2(head)
  for (const [magic, format] of FOREIGN_MAGIC) {
    if (ascii(head, 0, magic.length) === magic) {
      return refused(`it is ${format}; the store takes raw and qcow2 images`)
    }
  }
  if (size % SECTOR !== 0) {
    return refused(`it is not a qcow2 image, and ${size} bytes is not a whole number of sectors`)
  }
  if (!looksLikeRawDisk(head)) {
    return refused(
      "it is neither a qcow2 image nor a raw disk (no partition table or filesystem at its start)",
    )
  }
  return { _tag: "Accepted", format: "raw" }
}

/**
 * The most bytes a qcow2 file whose header starts `head` can have: its virtual size, plus its
 * tables (8 bytes of L2 and 2 of refcount per 64 KiB cluster, far below 1/64) and headers.
 * Undefined when `head` is no qcow2 header.
 */
export const qcow2FileLimit = (head: Uint8Array): number | undefined => {
  const virtual = qcow2VirtualSize(head)
  return virtual === undefined ? undefined : virtual + Math.ceil(virtual / 64) + 16 * 1024 * 1024
}

/** The virtual size a qcow2 header says; undefined when `head` is no qcow2 header. */
const qcow2VirtualSize = (head: Uint8Array): number | undefined =>
  head.length < 32 || ascii(head, 0, 4) !== QCOW_MAGIC
    ? undefined
    : Number(new DataView(head.buffer, head.byteOffset, 32).getBigUint64(24))

/**
 * The virtual size of a qcow2 whose header starts `head` and that reads nothing but itself (the
 * store's form: no backing file, no external data, no encryption); undefined for anything else,
 * which qemu-img must be asked about.
 */
export const standaloneQcow2Size = (head: Uint8Array): number | undefined =>
  ascii(head, 0, 4) === QCOW_MAGIC && probeQcow2(head)._tag === "Accepted"
    ? qcow2VirtualSize(head)
    : undefined
