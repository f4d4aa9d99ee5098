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

export interface BlobSource {
  readonly size: number
  /** The bytes in [start, end). */
  readonly read: (start: number, end: number) => Stream.Stream<Uint8Array, PlatformError>
}

type Segment =
  | { readonly _tag: "Bytes"; readonly bytes: Uint8Array }
  | { readonly _tag: "File"; readonly file: FileSystem.File; readonly size: number }

const segmentSize = (segment: Segment) =>
  segment._tag === "Bytes" ? segment.bytes.length : segment.size

/** Reads larger than this are split: each is one buffer in memory. */
const READ = 1024 * 1024

const fileRange = (file: FileSystem.File, start: number, end: number) =>
  Stream.unfoldEffect(
    start,
    (offset) =>
      offset >= end ? Effect.succeed(Option.none()) : Effect.flatMap(
        // Each read seeks: several ranges of one file may be read, one after the other.
        Effect.zipRight(file.seek(offset, "start"), file.readAlloc(Math.min(READ, end - offset))),
        Option.match({
          onNone: () => Effect.succeed(Option.none()),
          onSome: (chunk) => Effect.succeed(Option.some([chunk, offset + chunk.length] as const)),
        }),
      ),
  )

/** The blob made of `segments` in order. */
const concatenated = (segments: ReadonlyArray<Segment>): BlobSource => {
  const size = segments.reduce((total, segment) => total + segmentSize(segment), 0)
  const read = (start: number, end: number) => {
    const parts: Array<Stream.Stream<Uint8Array, PlatformError>> = []
    let offset = 0
    for (const segment of segments) {
      const length = segmentSize(segment)
      const from = Math.max(start, offset)
      const to = Math.min(end, offset + length)
      if (from < to) {
        parts.push(
          segment._tag === "Bytes"
            ? Stream.make(segment.bytes.subarray(from - offset, to - offset))
            : fileRange(segment.file, from - offset, to - offset),
        )
      }
      offset += length
    }
    return parts.reduce(
      (all, part) => Stream.concat(all, part),
      Stream.empty as Stream.Stream<Uint8Array, PlatformError>,
    )
  }
  return { size, read }
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

/** `sha256:HEX` of the whole blob, read once; `advance` is told of every chunk. */
export const blobDigest = (
  blob: BlobSource,
  advance: (bytes: number) => Effect.Effect<void>,
): Effect.Effect<string, PlatformError> =>
  Effect.suspend(() => {
    const hash = createHash("sha256")
    return blob.read(0, blob.size).pipe(
      Stream.runForEach((chunk) =>
        Effect.zipRight(Effect.sync(() => hash.update(chunk)), advance(chunk.length))
      ),
      Effect.map(() => `sha256:${hash.digest("hex")}`),
    )
  })

export const bytesDigest = (bytes: Uint8Array): string =>
  `sha256:${createHash("sha256").update(bytes).digest("hex")}`
