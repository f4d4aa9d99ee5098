/**
 * A blob to upload, readable again from any offset: bytes in memory, a file, or a containerDisk
 * layer — a tar made on the fly of two headers, the image file and the end-of-archive blocks,
 * so that the disk is read from the store and never copied or held in memory.
 */
import type { PlatformError } from "@effect/platform/Error"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { CONTAINER_DISK_OWNER } from "../../domain/oci_manifest.ts"
import { BufferRing } from "../bulk_fetch.ts"

export interface BlobSource {
  readonly size: number
  /**
   * Fill `target` with the bytes from `start` on (fewer at the blob's end); how many. The caller
   * owns `target` and may use it again: no allocation per read.
   */
  readonly readInto: (start: number, target: Uint8Array) => Effect.Effect<number, PlatformError>
  /**
   * The bytes in [start, end), as a stream of chunks in a ring of buffers (bulk_fetch.ts): a
   * chunk is overwritten `RING_CHUNKS` chunks later. An upload whose sent bytes differ from
   * those hashed is refused by the registry's digest check, never stored.
   */
  readonly read: (start: number, end: number) => Stream.Stream<Uint8Array, PlatformError>
}

type Segment =
  | { readonly _tag: "Bytes"; readonly bytes: Uint8Array }
  | { readonly _tag: "File"; readonly file: FileSystem.File; readonly size: number }

const segmentSize = (segment: Segment) =>
  segment._tag === "Bytes" ? segment.bytes.length : segment.size

/** Fill `target` from `file` at `position`; stops early only at the end of the file. */
const readFileInto = (file: FileSystem.File, position: number, target: Uint8Array) =>
  Effect.gen(function* () {
    yield* file.seek(position, "start")
    let filled = 0
    while (filled < target.length) {
      const count = Number(yield* file.read(target.subarray(filled)))
      if (count === 0) break
      filled += count
    }
    return filled
  })

/** The blob made of `segments` in order. */
const concatenated = (segments: ReadonlyArray<Segment>): BlobSource => {
  const size = segments.reduce((total, segment) => total + segmentSize(segment), 0)
  const readInto = (start: number, target: Uint8Array) =>
    Effect.gen(function* () {
      const end = Math.min(size, start + target.length)
      let offset = 0
      for (const segment of segments) {
        const length = segmentSize(segment)
        const from = Math.max(start, offset)
        const to = Math.min(end, offset + length)
        if (from < to) {
          const into = target.subarray(from - start, to - start)
          if (segment._tag === "Bytes") {
            into.set(segment.bytes.subarray(from - offset, to - offset))
          } else {
            const got = yield* readFileInto(segment.file, from - offset, into)
            // The file shrank: what it has (the registry's digest check refuses the upload).
            if (got < into.length) return from - start + got
          }
        }
        offset += length
      }
      return Math.max(0, end - start)
    })
  const read = (start: number, end: number) =>
    Stream.suspend(() => {
      const ring = new BufferRing()
      return Stream.unfoldEffect(start, (offset) => {
        if (offset >= end) return Effect.succeed(Option.none())
        const chunk = ring.take().subarray(0, Math.min(ring.size, end - offset))
        return Effect.map(
          readInto(offset, chunk),
          (count) =>
            count === 0
              ? Option.none()
              : Option.some([chunk.subarray(0, count), offset + count] as const),
        )
      })
    })
  return { size, readInto, read }
}

export const bytesBlob = (bytes: Uint8Array): BlobSource => concatenated([{ _tag: "Bytes", bytes }])

export const fileBlob = (file: FileSystem.File, size: number): BlobSource =>
  concatenated([{ _tag: "File", file, size }])

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
export const containerDiskLayer = (file: FileSystem.File, size: number): BlobSource => {
  const headers = new Uint8Array(2 * BLOCK)
  headers.set(tarHeader("disk/", "5", 0o555, 0), 0)
  headers.set(tarHeader("disk/disk.img", "0", 0o444, size), BLOCK)
  const padding = (BLOCK - (size % BLOCK)) % BLOCK
  return concatenated([
    { _tag: "Bytes", bytes: headers },
    { _tag: "File", file, size },
    // The file's padding, then the two zero blocks that end an archive.
    { _tag: "Bytes", bytes: new Uint8Array(padding + 2 * BLOCK) },
  ])
}

export const bytesDigest = (bytes: Uint8Array): string =>
  `sha256:${createHash("sha256").update(bytes).digest("hex")}`
