/**
 * Stream one file out of a tar archive (a Vagrant box's `box.img`), without holding the archive.
 * Reads ustar, GNU (long names, base-256 sizes) and pax (path, size) headers.
 */
import { SourceError } from "./decompress.ts"

const BLOCK = 512

/** Pulls exact byte counts out of a stream of arbitrary chunks. */
class ByteReader {
  #buffered: Uint8Array = new Uint8Array(0)
  constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {}

  /** Up to `max` bytes (fewer when the stream is ending); empty at the end. */
  async upTo(max: number): Promise<Uint8Array> {
    if (this.#buffered.length === 0) {
      const { done, value } = await this.reader.read()
      if (done) return new Uint8Array(0)
      this.#buffered = value
    }
    const out = this.#buffered.subarray(0, max)
    this.#buffered = this.#buffered.subarray(out.length)
    return out
  }

  /** Exactly `count` bytes, or undefined when the stream ends first. */
  async exactly(count: number): Promise<Uint8Array | undefined> {
    const out = new Uint8Array(count)
    let filled = 0
    while (filled < count) {
      const chunk = await this.upTo(count - filled)
      if (chunk.length === 0) return undefined
      out.set(chunk, filled)
      filled += chunk.length
    }
    return out
  }

  async skip(count: number): Promise<boolean> {
    let left = count
    while (left > 0) {
      const chunk = await this.upTo(Math.min(left, 1 << 20))
      if (chunk.length === 0) return false
      left -= chunk.length
    }
    return true
  }

  /** Read to the end (so that whoever observes the stream sees all of it). */
  async drain(): Promise<void> {
    while ((await this.upTo(1 << 20)).length > 0) { /* discard */ }
  }

  cancel(reason?: unknown): Promise<void> {
    return this.reader.cancel(reason)
  }
}

const decoder = new TextDecoder()

const text = (header: Uint8Array, start: number, length: number): string => {
  const field = header.subarray(start, start + length)
  const end = field.indexOf(0)
  return decoder.decode(end === -1 ? field : field.subarray(0, end))
}

/** A numeric field: octal text, or GNU base-256 when the top bit of the first byte is set. */
const number = (header: Uint8Array, start: number, length: number): number => {
  const field = header.subarray(start, start + length)
  if (((field[0] ?? 0) & 0x80) !== 0) {
    let value = (field[0] ?? 0) & 0x7f
    for (const byte of field.subarray(1)) value = value * 256 + byte
    return value
  }
  const octal = text(header, start, length).trim()
  return octal === "" ? 0 : parseInt(octal, 8)
}

/** pax records: `LEN key=value\n`... */
const paxRecords = (data: Uint8Array): Map<string, string> => {
  const records = new Map<string, string>()
  for (const line of decoder.decode(data).split("\n")) {
    const match = /^\d+ ([^=]+)=(.*)$/s.exec(line)
    if (match) records.set(match[1] ?? "", match[2] ?? "")
  }
  return records
}

const padded = (size: number) => Math.ceil(size / BLOCK) * BLOCK

/**
 * The contents of the first regular file in the archive `stream` whose path `wanted` accepts.
 * After that file, the rest of the archive is read and discarded, so that a checksum computed
 * on the way in covers the whole archive.
 */
export const tarEntry = (
  stream: ReadableStream<Uint8Array>,
  wanted: (path: string) => boolean,
  describe: string,
): ReadableStream<Uint8Array> => {
  const bytes = new ByteReader(stream.getReader())
  let remaining = -1

  const findEntry = async (): Promise<number> => {
    let longName: string | undefined
    let pax = new Map<string, string>()
    for (;;) {
      const header = await bytes.exactly(BLOCK)
      if (header === undefined || header.every((byte) => byte === 0)) {
        throw new SourceError(`${describe} holds no box.img`)
      }
      const type = String.fromCharCode(header[156] ?? 0)
      const size = pax.has("size") ? Number(pax.get("size")) : number(header, 124, 12)
      const prefix = text(header, 345, 155)
      const name = pax.get("path") ?? longName ??
        (prefix && text(header, 257, 5) === "ustar" ? `${prefix}/` : "") + text(header, 0, 100)
      if (type === "L" || type === "x") {
        const data = await bytes.exactly(padded(size))
        if (data === undefined) throw new SourceError(`${describe} is truncated`)
        if (type === "L") longName = text(data, 0, size)
        else pax = paxRecords(data.subarray(0, size))
        continue
      }
      longName = undefined
      pax = new Map()
      const regular = type === "0" || type === "\0" || type === "7"
      if (regular && wanted(name)) return size
      if (!(await bytes.skip(padded(size)))) throw new SourceError(`${describe} is truncated`)
    }
  }

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (remaining < 0) remaining = await findEntry()
      if (remaining === 0) {
        await bytes.drain()
        return controller.close()
      }
      const chunk = await bytes.upTo(Math.min(remaining, 1 << 20))
      if (chunk.length === 0) throw new SourceError(`${describe} is truncated`)
      remaining -= chunk.length
      controller.enqueue(chunk)
    },
    cancel: (reason) => bytes.cancel(reason),
  }, { highWaterMark: 0 })
}
