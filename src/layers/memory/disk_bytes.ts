/**
 * The MemoryWorld's disks as bytes, for the code that reads and writes image bytes (push, the
 * registry build cache, the step cache's digests): a disk's bytes are a qcow2 header (so the
 * probes take them), a token standing for a snapshot of the disk, and the backing name its
 * header holds; bytes that are some disk's become that disk again, with the same bytes.
 */
import { createHash } from "node:crypto"
import { cloneDisk } from "./disk_images_memory.ts"
import type { SimDisk } from "./world.ts"

const HEADER = 80
const TOKEN = 16
const snapshots = new Map<string, SimDisk>()
const tokens = new WeakMap<SimDisk, string>()

/** The bytes of `disk`: the same disk object gives the same bytes. */
export const diskBytes = (disk: SimDisk): Uint8Array => {
  let token = tokens.get(disk)
  if (token === undefined) {
    token = crypto.randomUUID().replace(/-/g, "").slice(0, TOKEN * 2)
    tokens.set(disk, token)
    snapshots.set(token, cloneDisk(disk))
  }
  const backing = new TextEncoder().encode(disk.backing ?? "")
  const bytes = new Uint8Array(HEADER + TOKEN + backing.length)
  const view = new DataView(bytes.buffer)
  bytes.set([0x51, 0x46, 0x49, 0xfb], 0)
  view.setUint32(4, 2)
  if (backing.length > 0) {
    view.setBigUint64(8, BigInt(HEADER + TOKEN))
    view.setUint32(16, backing.length)
  }
  view.setBigUint64(24, BigInt(disk.sizeBytes))
  for (let i = 0; i < TOKEN; i++) bytes[HEADER + i] = parseInt(token.slice(2 * i, 2 * i + 2), 16)
  bytes.set(backing, HEADER + TOKEN)
  return bytes
}

/** The disk whose bytes are `bytes`, when they are some disk's: the same bytes again. */
export const diskFromBytes = (bytes: Uint8Array): SimDisk | undefined => {
  if (bytes.length < HEADER + TOKEN) return undefined
  const token = [...bytes.subarray(HEADER, HEADER + TOKEN)]
    .map((byte) => byte.toString(16).padStart(2, "0")).join("")
  const snapshot = snapshots.get(token)
  if (snapshot === undefined) return undefined
  const disk = cloneDisk(snapshot)
  const backing = new TextDecoder().decode(bytes.subarray(HEADER + TOKEN))
  if (backing !== "") disk.backing = backing
  tokens.set(disk, token)
  return disk
}

/** `sha256:HEX` of `disk`'s bytes, as the step cache hashes a layer's file. */
export const diskDigest = (disk: SimDisk): string =>
  `sha256:${createHash("sha256").update(diskBytes(disk)).digest("hex")}`
