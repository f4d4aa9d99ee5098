/**
 * Reads tar archives (plain or gzip-compressed) into simulated filesystem nodes, so the memory
 * guest's ADD extracts real archives made by tests.
 */
import type { SimNode } from "./sim_fs.ts"

export interface TarEntry {
  readonly path: string
  readonly node: SimNode
}

const BLOCK = 512
const decoder = new TextDecoder()

const text = (bytes: Uint8Array, start: number, length: number): string => {
  const field = bytes.subarray(start, start + length)
  const end = field.indexOf(0)
  return decoder.decode(end === -1 ? field : field.subarray(0, end))
}

const octal = (bytes: Uint8Array, start: number, length: number): number =>
  parseInt(text(bytes, start, length).trim() || "0", 8)

export const isGzip = (bytes: Uint8Array): boolean => bytes[0] === 0x1f && bytes[1] === 0x8b

export const isTar = (bytes: Uint8Array): boolean =>
  bytes.length >= BLOCK && text(bytes, 257, 5) === "ustar"

export const gunzip = async (bytes: Uint8Array): Promise<Uint8Array> => {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new DecompressionStream("gzip"),
  )
  return new Uint8Array(await new Response(stream).arrayBuffer())
}

/** The entries of a plain tar archive; hard links become copies of their target. */
export const readTar = (bytes: Uint8Array): ReadonlyArray<TarEntry> => {
  const entries: Array<TarEntry> = []
  const files = new Map<string, Uint8Array>()
  let longName: string | undefined
  for (let offset = 0; offset + BLOCK <= bytes.length;) {
    const header = bytes.subarray(offset, offset + BLOCK)
    if (header.every((byte) => byte === 0)) break
    const size = octal(header, 124, 12)
    const type = String.fromCharCode(header[156] ?? 0)
    const body = bytes.subarray(offset + BLOCK, offset + BLOCK + size)
    offset += BLOCK + Math.ceil(size / BLOCK) * BLOCK
    if (type === "L") {
      longName = decoder.decode(body).replace(/\0+$/, "")
      continue
    }
    if (type === "x") {
      const path = /\d+ path=([^\n]*)\n/.exec(decoder.decode(body))
      if (path) longName = path[1]
      continue
    }
    if (type === "g") continue
    const prefix = text(header, 345, 155)
    const name = longName ?? (prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100))
    longName = undefined
    const path = "/" + name.replace(/^\.?\/+/, "").replace(/\/+$/, "")
    const owner = {
      mode: octal(header, 100, 8) & 0o7777,
      uid: octal(header, 108, 8),
      gid: octal(header, 116, 8),
    }
    const linkName = text(header, 157, 100)
    if (type === "5") entries.push({ path, node: { kind: "directory", ...owner } })
    else if (type === "2") {
      entries.push({ path, node: { kind: "symlink", target: linkName, ...owner } })
    } else if (type === "1") {
      const content = files.get("/" + linkName.replace(/^\.?\/+/, "")) ?? new Uint8Array()
      entries.push({ path, node: { kind: "file", content, ...owner } })
    } else if (type === "0" || type === "\0") {
      const content = body.slice()
      files.set(path, content)
      entries.push({ path, node: { kind: "file", content, ...owner } })
    }
  }
  return entries
}
