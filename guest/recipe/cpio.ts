/**
 * A reproducible newc cpio writer: entries sorted by path, mtime 0, owner 0:0, inode numbers
 * assigned in order, so the same tree always gives the same bytes.
 */

export type CpioEntry =
  | { readonly kind: "directory"; readonly path: string; readonly mode: number }
  | {
    readonly kind: "file"
    readonly path: string
    readonly mode: number
    readonly data: Uint8Array
  }
  | { readonly kind: "symlink"; readonly path: string; readonly target: string }
  | {
    readonly kind: "char"
    readonly path: string
    readonly mode: number
    readonly major: number
    readonly minor: number
  }

const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const S_IFLNK = 0o120000
const S_IFCHR = 0o020000

const hex8 = (value: number) => value.toString(16).padStart(8, "0")
const pad4 = (length: number) => (4 - (length % 4)) % 4

/** The archive of `entries` (paths without a leading `/`; parents must be listed too). */
export const writeCpio = (entries: ReadonlyArray<CpioEntry>): Uint8Array => {
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  for (let index = 1; index < sorted.length; index++) {
    if (sorted[index]!.path === sorted[index - 1]!.path) {
      throw new Error(`duplicate cpio entry ${sorted[index]!.path}`)
    }
  }
  const encoder = new TextEncoder()
  const chunks: Array<Uint8Array> = []
  const push = (
    ino: number,
    mode: number,
    nlink: number,
    name: string,
    data: Uint8Array,
    rdev: readonly [number, number] = [0, 0],
  ) => {
    const nameBytes = encoder.encode(`${name}\0`)
    const header = "070701" +
      [ino, mode, 0, 0, nlink, 0, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0]
        .map(hex8).join("")
    chunks.push(encoder.encode(header), nameBytes, new Uint8Array(pad4(110 + nameBytes.length)))
    chunks.push(data, new Uint8Array(pad4(data.length)))
  }
  sorted.forEach((entry, index) => {
    const ino = index + 1
    switch (entry.kind) {
      case "directory":
        return push(ino, S_IFDIR | entry.mode, 2, entry.path, new Uint8Array())
      case "file":
        return push(ino, S_IFREG | entry.mode, 1, entry.path, entry.data)
      case "symlink":
        return push(ino, S_IFLNK | 0o777, 1, entry.path, encoder.encode(entry.target))
      case "char":
        return push(ino, S_IFCHR | entry.mode, 1, entry.path, new Uint8Array(), [
          entry.major,
          entry.minor,
        ])
    }
  })
  push(0, 0, 1, "TRAILER!!!", new Uint8Array())
  const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0)
  const archive = new Uint8Array(total)
  let offset = 0
  for (const chunk of chunks) {
    archive.set(chunk, offset)
    offset += chunk.length
  }
  return archive
}
