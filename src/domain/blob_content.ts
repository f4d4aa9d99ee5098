/**
 * A blob to upload as a list of segments read in order: bytes in memory, or a file of a known
 * size. A containerDisk's layer is such a list — a tar made of two headers, the image file and the
 * end-of-archive blocks — so that the disk is read from the store and never copied or held in
 * memory. `F` is the open file's handle; the domain only places it.
 */
import { createHash } from "node:crypto"
import { CONTAINER_DISK_OWNER } from "./oci_manifest.ts"

export type BlobSegment<F> =
  | { readonly _tag: "Bytes"; readonly bytes: Uint8Array }
  | { readonly _tag: "File"; readonly file: F; readonly size: number }

export type BlobContent<F> = ReadonlyArray<BlobSegment<F>>

export const segmentSize = <F>(segment: BlobSegment<F>): number =>
  segment._tag === "Bytes" ? segment.bytes.length : segment.size

export const contentSize = <F>(content: BlobContent<F>): number =>
  content.reduce((total, segment) => total + segmentSize(segment), 0)

export const bytesContent = <F>(bytes: Uint8Array): BlobContent<F> => [{ _tag: "Bytes", bytes }]

export const fileContent = <F>(file: F, size: number): BlobContent<F> => [
  { _tag: "File", file, size },
]

const BLOCK = 512
const encoder = new TextEncoder()

const writeText = (header: Uint8Array, offset: number, length: number, value: string) =>
  header.set(encoder.encode(value).subarray(0, length), offset)

/** An octal field of `length` bytes (digits and a NUL), or base-256 when it does not fit. */
const writeNumber = (header: Uint8Array, offset: number, length: number, value: number) => {
  const octal = value.toString(8)
  if (octal.length < length) {
    writeText(header, offset, length, `${octal.padStart(length - 1, "0")}\0`)
    return
  }
  let rest = BigInt(value)
  for (let i = length - 1; i > 0; i--) {
    header[offset + i] = Number(rest & 0xffn)
    rest >>= 8n
  }
  header[offset] = 0x80
}

/** A ustar header for `name` (type `0` file or `5` directory), owned by KubeVirt's qemu user. */
export const tarHeader = (
  name: string,
  type: "0" | "5",
  mode: number,
  size: number,
): Uint8Array => {
  const header = new Uint8Array(BLOCK)
  writeText(header, 0, 100, name)
  writeNumber(header, 100, 8, mode)
  writeNumber(header, 108, 8, CONTAINER_DISK_OWNER)
  writeNumber(header, 116, 8, CONTAINER_DISK_OWNER)
  writeNumber(header, 124, 12, size)
  // A fixed time: the same image gives the same layer digest, and a second push uploads nothing.
  writeNumber(header, 136, 12, 0)
  writeText(header, 156, 1, type)
  writeText(header, 257, 6, "ustar\0")
  writeText(header, 263, 2, "00")
  writeText(header, 148, 8, "        ")
  const sum = header.reduce((total, byte) => total + byte, 0)
  writeText(header, 148, 8, `${sum.toString(8).padStart(6, "0")}\0 `)
  return header
}

/** The tar layer of a containerDisk: `disk/` (0555) and `disk/disk.img` (0444, the image). */
export const containerDiskContent = <F>(file: F, size: number): BlobContent<F> => {
  const headers = new Uint8Array(2 * BLOCK)
  headers.set(tarHeader("disk/", "5", 0o555, 0), 0)
  headers.set(tarHeader("disk/disk.img", "0", 0o444, size), BLOCK)
  const padding = (BLOCK - (size % BLOCK)) % BLOCK
  return [
    { _tag: "Bytes", bytes: headers },
    { _tag: "File", file, size },
    // The file's padding, then the two zero blocks that end an archive.
    { _tag: "Bytes", bytes: new Uint8Array(padding + 2 * BLOCK) },
  ]
}

/** The digest of bytes held in memory, as registries name blobs and manifests. */
export const bytesDigest = (bytes: Uint8Array): string =>
  `sha256:${createHash("sha256").update(bytes).digest("hex")}`
