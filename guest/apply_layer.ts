/**
 * Applies one uncompressed container image layer, a tar stream, onto a directory by the OCI
 * image-spec's layer rules (layer.md): whiteouts remove what the lower layers left, opaque
 * directories hide their lower contents, an entry replaces whatever is at its path (a directory
 * stays a directory and keeps its contents), and ownership, modes, xattrs and mtimes are exact.
 *
 * Read as a stream: entries' contents go straight to their files, nothing is held whole. Tar
 * formats: ustar, GNU (`L`/`K` long names, base-256 numbers) and pax (`x` and `g` headers).
 *
 * No path leaves the root: `..` is refused, absolute paths are taken relative to the root, and
 * the parents of every path are walked with lstat, so a symlink in a parent (which a previous
 * entry or layer may have put there) is refused, never followed.
 */
import { ruleLayerEntry, ruleLayerEntryPath } from "../src/domain/layer_entry_rules.ts"
import {
  checksumHolds,
  headerNumber,
  headerPath,
  headerText,
  paddedSize,
  TAR_BLOCK,
} from "../src/domain/tar_header.ts"
import {
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  cString,
  ENOENT,
  lastErrno,
  lastError,
  libc,
  makedev,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  STAT_BYTES,
  STAT_MODE_OFFSET,
  STAT_TIMES_OFFSET,
} from "./libc.ts"

/** What applying a layer did. */
export interface ApplyLayerSummary {
  /** Files, directories, links and nodes created or updated. */
  readonly entries: number
  /** Bytes of file contents written. */
  readonly bytes: number
  /** `.wh.NAME` and `.wh..wh..opq` markers applied. */
  readonly whiteouts: number
}

export interface ApplyLayerOptions {
  /** Aborting stops the applier between two reads; what was applied stays. */
  readonly signal?: AbortSignal
}

/** Why a layer could not be applied; the message names the entry. */
export class ApplyLayerError extends Error {
  override readonly name = "ApplyLayerError"
}

const BLOCK = TAR_BLOCK
/** Pax and GNU long-name headers are read whole; none of a sane layer comes near this. */
const MAX_METADATA_BYTES = 1 << 20
/** File contents are written in pieces of up to this much: few syscalls, bounded memory. */
const WRITE_BUFFER_BYTES = 1 << 20

/** Apply the layer tar read from `stream` onto the directory `root`. */
export const applyLayer = async (
  stream: ReadableStream<Uint8Array>,
  root: string,
  options: ApplyLayerOptions = {},
): Promise<ApplyLayerSummary> => {
  const { signal } = options
  signal?.throwIfAborted()
  let realRoot: string
  try {
    realRoot = Deno.realPathSync(root)
    if (!Deno.statSync(realRoot).isDirectory) throw new Error("not a directory")
  } catch (error) {
    throw new ApplyLayerError(`cannot apply a layer onto ${root}: ${reason(error)}`)
  }
  const reader = stream.getReader()
  // A read waits for the host's next stdin frame, which may never come: cancel it.
  const cancel = () => reader.cancel().catch(() => {})
  signal?.addEventListener("abort", cancel, { once: true })
  try {
    const applier = new LayerApplier(realRoot)
    await readLayer(new LayerBytes(reader, signal), applier)
    applier.finish()
    return applier.summary()
  } finally {
    signal?.removeEventListener("abort", cancel)
    reader.releaseLock()
  }
}

// ---------------------------------------------------------------------------------------------
// The byte stream

/** The layer's bytes, read in the stream's chunks, handed on without copies where possible. */
class LayerBytes {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>
  readonly #signal: AbortSignal | undefined
  #chunk: Uint8Array = new Uint8Array(0)
  #offset = 0

  constructor(reader: ReadableStreamDefaultReader<Uint8Array>, signal: AbortSignal | undefined) {
    this.#reader = reader
    this.#signal = signal
  }

  /** Whether a byte is available (reading more if needed); false at the end of the stream. */
  async #fill(): Promise<boolean> {
    while (this.#offset >= this.#chunk.length) {
      this.#signal?.throwIfAborted()
      const { done, value } = await this.#reader.read()
      this.#signal?.throwIfAborted()
      if (done) return false
      this.#chunk = value
      this.#offset = 0
    }
    return true
  }

  /**
   * The next `n` bytes, valid until the next read; undefined if the stream ends before the first,
   * null if it ends partway.
   */
  async take(n: number): Promise<Uint8Array | undefined | null> {
    if (!(await this.#fill())) return undefined
    if (this.#chunk.length - this.#offset >= n) {
      const bytes = this.#chunk.subarray(this.#offset, this.#offset + n)
      this.#offset += n
      return bytes
    }
    const bytes = new Uint8Array(n)
    const ended = !(await this.pipe(n, (piece, at) => bytes.set(piece, at)))
    return ended ? null : bytes
  }

  /** Hand the next `n` bytes to `sink` in pieces; false if the stream ends first. */
  async pipe(n: number, sink: (piece: Uint8Array, at: number) => void): Promise<boolean> {
    for (let done = 0; done < n;) {
      if (!(await this.#fill())) return false
      const take = Math.min(n - done, this.#chunk.length - this.#offset)
      sink(this.#chunk.subarray(this.#offset, this.#offset + take), done)
      this.#offset += take
      done += take
    }
    return true
  }

  skip(n: number): Promise<boolean> {
    return this.pipe(n, () => {})
  }

  /** Read to the end: the writer pads the archive past its end marker. */
  async drain(): Promise<void> {
    while (await this.#fill()) this.#offset = this.#chunk.length
  }
}

// ---------------------------------------------------------------------------------------------
// Tar headers

type EntryType = "file" | "hardlink" | "symlink" | "char" | "block" | "directory" | "fifo"

const ENTRY_TYPES: Record<string, EntryType> = {
  "0": "file",
  "\0": "file",
  // Contiguous files are regular files everywhere but on a few old systems.
  "7": "file",
  "1": "hardlink",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "directory",
  "6": "fifo",
}

interface Timestamp {
  readonly seconds: bigint
  readonly nanoseconds: bigint
}

/** One entry to apply, with its pax and GNU extensions folded in. */
interface Entry {
  /** The path as the archive gives it, for messages. */
  readonly raw: string
  readonly type: EntryType
  readonly mode: number
  readonly uid: number
  readonly gid: number
  readonly size: number
  readonly mtime: Timestamp
  readonly atime: Timestamp
  readonly linkname: string
  readonly devmajor: number
  readonly devminor: number
  readonly xattrs: ReadonlyMap<string, Uint8Array>
}

const utf8 = new TextDecoder()

const isZeroBlock = (block: Uint8Array): boolean => {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false
  return true
}

/** Pax records, `LENGTH KEY=VALUE\n`; values stay bytes, since xattr values are binary. */
const paxRecords = (bytes: Uint8Array, into: Map<string, Uint8Array>, where: string): void => {
  let offset = 0
  while (offset < bytes.length) {
    if (bytes[offset] === 0) break
    const space = bytes.indexOf(0x20, offset)
    const length = space === -1 ? NaN : Number(utf8.decode(bytes.subarray(offset, space)))
    const end = offset + length
    if (!Number.isInteger(length) || length <= 0 || end > bytes.length || bytes[end - 1] !== 0x0a) {
      throw new ApplyLayerError(`the pax header of layer entry ${where} is malformed`)
    }
    const record = bytes.subarray(space + 1, end - 1)
    const equals = record.indexOf(0x3d)
    if (equals === -1) {
      throw new ApplyLayerError(`the pax header of layer entry ${where} has a record without '='`)
    }
    into.set(utf8.decode(record.subarray(0, equals)), record.subarray(equals + 1).slice())
    offset = end
  }
}

/** A pax time, `SECONDS[.FRACTION]`, possibly negative. */
const paxTime = (value: string): Timestamp | undefined => {
  const match = /^(-?)(\d+)(?:\.(\d*))?$/.exec(value)
  if (match === null) return undefined
  const seconds = BigInt(match[2]!)
  const nanoseconds = BigInt((match[3] ?? "").slice(0, 9).padEnd(9, "0"))
  if (match[1] === "") return { seconds, nanoseconds }
  return nanoseconds === 0n
    ? { seconds: -seconds, nanoseconds }
    : { seconds: -seconds - 1n, nanoseconds: 1_000_000_000n - nanoseconds }
}

const base64Bytes = (value: string): Uint8Array =>
  Uint8Array.from(atob(value), (char) => char.charCodeAt(0))

/** An entry from its header and the pax records in force (this entry's over the global ones). */
const entryOf = (
  block: Uint8Array,
  pax: ReadonlyMap<string, Uint8Array>,
  longName: string | undefined,
  longLink: string | undefined,
): Entry => {
  const paxText = (key: string): string | undefined => {
    const value = pax.get(key)
    return value === undefined || value.length === 0 ? undefined : utf8.decode(value)
  }
  const paxNumber = (key: string, fallback: number): number => {
    const value = paxText(key)
    return value === undefined || !/^\d+$/.test(value) ? fallback : Number(value)
  }
  const name = paxText("path") ?? longName ?? headerPath(block)
  const flag = String.fromCharCode(block[156]!)
  let type = ENTRY_TYPES[flag]
  // Pre-POSIX archives mark directories by a trailing slash only.
  if (type === "file" && flag !== "7" && name.endsWith("/")) type = "directory"
  if (type === undefined) {
    throw new ApplyLayerError(
      `layer entry '${name}' has tar type '${flag === "\0" ? "NUL" : flag}', which a layer ` +
        `may not hold`,
    )
  }
  if (pax.has("GNU.sparse.major") || pax.has("GNU.sparse.size") || pax.has("GNU.sparse.map")) {
    throw new ApplyLayerError(`layer entry '${name}' is a sparse file, which is not supported`)
  }
  const mtime = paxTime(paxText("mtime") ?? "") ??
    { seconds: BigInt(headerNumber(block, 136, 12)), nanoseconds: 0n }
  const xattrs = new Map<string, Uint8Array>()
  for (const [key, value] of pax) {
    if (key.startsWith("SCHILY.xattr.")) xattrs.set(key.slice("SCHILY.xattr.".length), value)
    else if (key.startsWith("LIBARCHIVE.xattr.")) {
      const xattr = decodeURIComponent(key.slice("LIBARCHIVE.xattr.".length))
      if (!xattrs.has(xattr)) xattrs.set(xattr, base64Bytes(utf8.decode(value)))
    }
  }
  return {
    raw: name,
    type,
    mode: headerNumber(block, 100, 8) & 0o7777,
    uid: paxNumber("uid", headerNumber(block, 108, 8)),
    gid: paxNumber("gid", headerNumber(block, 116, 8)),
    size: type === "file" ? paxNumber("size", headerNumber(block, 124, 12)) : 0,
    mtime,
    atime: paxTime(paxText("atime") ?? "") ?? mtime,
    linkname: paxText("linkpath") ?? longLink ?? headerText(block, 157, 100),
    devmajor: headerNumber(block, 329, 8),
    devminor: headerNumber(block, 337, 8),
    xattrs,
  }
}

const padding = (size: number): number => paddedSize(size) - size

/** Read the archive's headers in order and hand each entry to `applier`. */
const readLayer = async (bytes: LayerBytes, applier: LayerApplier): Promise<void> => {
  const globalPax = new Map<string, Uint8Array>()
  let entryPax: Map<string, Uint8Array> | undefined
  let longName: string | undefined
  let longLink: string | undefined
  let previous = "the start of the layer"
  const truncated = () =>
    new ApplyLayerError(`the layer ends inside the entry after ${previous}; it is truncated`)
  const metadata = async (size: number, what: string): Promise<Uint8Array> => {
    if (size > MAX_METADATA_BYTES) {
      throw new ApplyLayerError(`the ${what} after ${previous} has ${size} bytes, too many`)
    }
    const data = await bytes.take(size + padding(size))
    if (data === undefined || data === null) throw truncated()
    return data.subarray(0, size).slice()
  }
  for (;;) {
    const block = await bytes.take(BLOCK)
    // An archive that ends at a header boundary without its zero blocks is whole, as Go reads it.
    if (block === undefined) return
    if (block === null) throw truncated()
    if (block[0] === 0 && isZeroBlock(block)) break
    if (!checksumHolds(block)) {
      throw new ApplyLayerError(
        `the tar header after ${previous} has a bad checksum; the layer is corrupt`,
      )
    }
    const size = headerNumber(block, 124, 12)
    switch (String.fromCharCode(block[156]!)) {
      case "x":
        entryPax = new Map()
        paxRecords(await metadata(size, "pax header"), entryPax, `after ${previous}`)
        continue
      case "g":
        paxRecords(await metadata(size, "global pax header"), globalPax, `after ${previous}`)
        continue
      case "L":
        longName = headerText(await metadata(size, "long name"), 0, size)
        continue
      case "K":
        longLink = headerText(await metadata(size, "long link name"), 0, size)
        continue
    }
    const pax = entryPax === undefined ? globalPax : new Map([...globalPax, ...entryPax])
    const entry = entryOf(block, pax, longName, longLink)
    entryPax = longName = longLink = undefined
    previous = `'${entry.raw}'`
    if (!(await applier.apply(entry, bytes))) throw truncated()
    if (!(await bytes.skip(padding(entry.size)))) throw truncated()
  }
  await bytes.drain()
}

// ---------------------------------------------------------------------------------------------
// Applying entries

const reason = (error: unknown): string => error instanceof Error ? error.message : String(error)

const fail = (entry: Entry, what: string): ApplyLayerError =>
  new ApplyLayerError(`cannot apply layer entry '${entry.raw}': ${what}`)

const ancestors = function* (path: string): Generator<string> {
  for (let slash = path.indexOf("/"); slash !== -1; slash = path.indexOf("/", slash + 1)) {
    yield path.slice(0, slash)
  }
}

const parentOf = (path: string): string => {
  const slash = path.lastIndexOf("/")
  return slash === -1 ? "." : path.slice(0, slash)
}

/** What is at a path, as far as applying a layer cares. */
type PathKind = "directory" | "symlink" | "other"

const joinPath = (directory: string, name: string): string =>
  directory === "." ? name : `${directory}/${name}`

/** The state of one layer's application: what it made, what is known to be a real directory. */
class LayerApplier {
  readonly #root: string
  /** Paths (relative to the root) verified to be directories, not symlinks, since the last removal. */
  readonly #directories = new Set<string>()
  /** Paths this layer's entries made: kept by its own whiteouts and opaque markers. */
  readonly #made = new Set<string>()
  /** Directories holding something this layer made. */
  readonly #holding = new Set<string>()
  /** Directories' times, set last: creating their children changes them. */
  readonly #directoryTimes: Array<{ readonly entry: Entry; readonly path: string }> = []
  /**
   * The times (atime, mtime as two timespecs) of directories this layer changed the contents of
   * without an entry of their own: restored last, since the layer did not change them.
   */
  readonly #untouchedTimes = new Map<
    string,
    { readonly entry: Entry; readonly times: Uint8Array }
  >()
  readonly #buffer = new Uint8Array(WRITE_BUFFER_BYTES)
  readonly #stat = new Uint8Array(STAT_BYTES)
  readonly #statView = new DataView(this.#stat.buffer)
  #entries = 0
  #bytes = 0
  #whiteouts = 0

  constructor(root: string) {
    this.#root = root
  }

  summary(): ApplyLayerSummary {
    return { entries: this.#entries, bytes: this.#bytes, whiteouts: this.#whiteouts }
  }

  #absolute(path: string): string {
    return path === "." ? this.#root : `${this.#root}/${path}`
  }

  /** Apply one entry, reading its contents; false if the stream ends inside them. */
  apply(entry: Entry, bytes: LayerBytes): Promise<boolean> {
    const ruled = ruleLayerEntry(entry.raw)
    if (!ruled.ok) throw new ApplyLayerError(ruled.reason)
    const kind = ruled.value
    switch (kind._tag) {
      case "AufsMetadata":
        return bytes.skip(entry.size)
      case "Whiteout":
        this.#whiteout(entry, kind.target)
        return bytes.skip(entry.size)
      case "OpaqueDirectory":
        this.#opaque(entry, kind.path, kind.directory)
        return bytes.skip(entry.size)
      case "Plain":
        this.#entries++
        return this.#plain(entry, kind.path, bytes)
    }
  }

  async #plain(entry: Entry, path: string, bytes: LayerBytes): Promise<boolean> {
    if (path === ".") {
      if (entry.type !== "directory") throw fail(entry, "only a directory can be the root")
      this.#metadata(entry, ".")
      this.#directoryTimes.push({ entry, path })
      return true
    }
    this.#parents(entry, path, true)
    this.#changing(entry, parentOf(path))
    this.#record(path)
    switch (entry.type) {
      case "directory":
        if (!this.#clear(entry, path, true)) {
          this.#call(entry, "mkdir", () => Deno.mkdirSync(this.#absolute(path), { mode: 0o700 }))
        }
        this.#directories.add(path)
        this.#metadata(entry, path)
        this.#directoryTimes.push({ entry, path })
        return true
      case "file": {
        this.#clear(entry, path, false)
        const whole = await this.#write(entry, path, bytes)
        if (whole) this.#metadata(entry, path)
        return whole
      }
      case "symlink":
        this.#clear(entry, path, false)
        this.#call(entry, "symlink", () => Deno.symlinkSync(entry.linkname, this.#absolute(path)))
        this.#metadata(entry, path)
        return true
      case "hardlink":
        this.#hardlink(entry, path)
        return true
      case "char":
      case "block":
      case "fifo": {
        this.#clear(entry, path, false)
        const type = entry.type === "fifo" ? S_IFIFO : entry.type === "char" ? S_IFCHR : S_IFBLK
        const device = entry.type === "fifo" ? 0n : makedev(entry.devmajor, entry.devminor)
        this.#libc(
          entry,
          "mknod",
          libc().mknod(cString(this.#absolute(path)), type | 0o600, device),
        )
        this.#metadata(entry, path)
        return true
      }
    }
  }

  /** Write the entry's contents to a new file at `path`; false if the stream ends first. */
  async #write(entry: Entry, path: string, bytes: LayerBytes): Promise<boolean> {
    let file: Deno.FsFile
    try {
      // createNew: O_EXCL, which never follows a symlink left at the path.
      file = Deno.openSync(this.#absolute(path), { write: true, createNew: true, mode: 0o600 })
    } catch (error) {
      throw fail(entry, `create failed: ${reason(error)}`)
    }
    const buffer = this.#buffer
    let filled = 0
    const writeAll = (data: Uint8Array) => {
      try {
        for (let offset = 0; offset < data.length;) offset += file.writeSync(data.subarray(offset))
      } catch (error) {
        throw fail(entry, `write failed: ${reason(error)}`)
      }
    }
    try {
      const whole = await bytes.pipe(entry.size, (piece) => {
        if (filled + piece.length > buffer.length) {
          writeAll(buffer.subarray(0, filled))
          filled = 0
        }
        // Large pieces go straight to the file; small ones are gathered into fewer writes.
        if (piece.length >= buffer.length / 2) writeAll(piece)
        else {
          buffer.set(piece, filled)
          filled += piece.length
        }
      })
      writeAll(buffer.subarray(0, filled))
      this.#bytes += entry.size
      return whole
    } finally {
      file.close()
    }
  }

  #hardlink(entry: Entry, path: string): void {
    const ruled = ruleLayerEntryPath(entry.linkname)
    if (!ruled.ok) throw fail(entry, `its link target is refused: ${ruled.reason}`)
    const target = ruled.value
    if (target === path) return
    if (target === "." || !this.#parents(entry, target, false)) {
      throw fail(entry, `its link target '${entry.linkname}' does not exist`)
    }
    const kind = this.#lstat(entry, target)
    if (kind === undefined) throw fail(entry, `its link target '${entry.linkname}' does not exist`)
    if (kind === "directory") {
      throw fail(entry, `its link target '${entry.linkname}' is a directory`)
    }
    this.#clear(entry, path, false)
    this.#call(entry, "link", () => Deno.linkSync(this.#absolute(target), this.#absolute(path)))
  }

  /** Owner, then mode (chown clears setuid), then xattrs, then (but for directories) times. */
  #metadata(entry: Entry, path: string): void {
    const name = cString(this.#absolute(path))
    const c = libc()
    this.#libc(entry, "lchown", c.lchown(name, entry.uid, entry.gid))
    if (entry.type !== "symlink") this.#libc(entry, "chmod", c.chmod(name, entry.mode))
    for (const [xattr, value] of entry.xattrs) {
      const result = c.lsetxattr(name, cString(xattr), value, BigInt(value.length), 0)
      if (result < 0) throw fail(entry, `setting xattr ${xattr} failed: ${lastError()}`)
    }
    if (entry.type !== "directory") this.#times(entry, name)
  }

  #times(entry: Entry, name: Uint8Array): void {
    const times = new BigInt64Array([
      entry.atime.seconds,
      entry.atime.nanoseconds,
      entry.mtime.seconds,
      entry.mtime.nanoseconds,
    ])
    const result = libc().utimensat(
      AT_FDCWD,
      name,
      new Uint8Array(times.buffer),
      AT_SYMLINK_NOFOLLOW,
    )
    this.#libc(entry, "utimensat", result)
  }

  /** Directories' times, once nothing more is created in them; those removed since are passed. */
  finish(): void {
    const stillDirectory = (entry: Entry, path: string) =>
      path === "." ||
      (this.#underDirectories(entry, path) && this.#lstat(entry, path) === "directory")
    for (const [path, { entry, times }] of this.#untouchedTimes) {
      if (this.#made.has(path) || !stillDirectory(entry, path)) continue
      const name = cString(this.#absolute(path))
      this.#libc(entry, "utimensat", libc().utimensat(AT_FDCWD, name, times, AT_SYMLINK_NOFOLLOW))
    }
    for (const { entry, path } of this.#directoryTimes) {
      if (stillDirectory(entry, path)) this.#times(entry, cString(this.#absolute(path)))
    }
  }

  /** Note the times of `directory`, whose contents the entry changes, before the first change. */
  #changing(entry: Entry, directory: string): void {
    if (this.#made.has(directory) || this.#untouchedTimes.has(directory)) return
    this.#libc(entry, "lstat", libc().lstat(cString(this.#absolute(directory)), this.#stat))
    const times = this.#stat.slice(STAT_TIMES_OFFSET, STAT_TIMES_OFFSET + 32)
    this.#untouchedTimes.set(directory, { entry, times })
  }

  /**
   * `.wh.NAME`: remove NAME as the lower layers left it; what this layer made there stays. Under
   * a parent that is no directory (a file or symlink that replaced one: umoci writes such
   * whiteouts) no lower file is left to remove, and a symlink is never followed.
   */
  #whiteout(entry: Entry, target: string): void {
    this.#whiteouts++
    if (!this.#underDirectories(entry, target)) return
    const kind = this.#lstat(entry, target)
    if (kind === undefined) return
    if (this.#made.has(target) || this.#holding.has(target)) {
      if (kind === "directory") this.#prune(entry, target)
      return
    }
    this.#remove(entry, target, kind === "directory")
  }

  /** `.wh..wh..opq`: empty the directory of all this layer did not make (none: nothing to do). */
  #opaque(entry: Entry, marker: string, directory: string): void {
    this.#whiteouts++
    if (this.#underDirectories(entry, marker)) this.#prune(entry, directory)
  }

  #prune(entry: Entry, directory: string): void {
    let children: Array<Deno.DirEntry>
    try {
      children = [...Deno.readDirSync(this.#absolute(directory))]
    } catch (error) {
      throw fail(entry, `reading '${directory}' failed: ${reason(error)}`)
    }
    for (const child of children) {
      const path = joinPath(directory, child.name)
      if (this.#made.has(path) || this.#holding.has(path)) {
        // A directory's entry of this layer keeps only what this layer put in it.
        if (child.isDirectory) this.#prune(entry, path)
      } else this.#remove(entry, path, child.isDirectory)
    }
  }

  #record(path: string): void {
    this.#made.add(path)
    for (const parent of ancestors(path)) this.#holding.add(parent)
  }

  /**
   * Make sure each parent of `path` is a real directory, creating missing ones if `create`;
   * false if one is missing and not created. A symlink or a file in the way is refused.
   */
  #parents(entry: Entry, path: string, create: boolean): boolean {
    for (const parent of ancestors(path)) {
      if (this.#directories.has(parent)) continue
      const kind = this.#lstat(entry, parent)
      if (kind === undefined) {
        if (!create) return false
        this.#call(entry, "mkdir", () => Deno.mkdirSync(this.#absolute(parent), { mode: 0o755 }))
      } else if (kind === "symlink") {
        throw fail(entry, `its parent '${parent}' is a symbolic link, which a layer may not follow`)
      } else if (kind !== "directory") {
        throw fail(entry, `its parent '${parent}' is not a directory`)
      }
      this.#directories.add(parent)
    }
    return true
  }

  /** Whether each parent of `path` is a real directory (not a symlink to one). */
  #underDirectories(entry: Entry, path: string): boolean {
    for (const parent of ancestors(path)) {
      if (this.#directories.has(parent)) continue
      if (this.#lstat(entry, parent) !== "directory") return false
      this.#directories.add(parent)
    }
    return true
  }

  /**
   * Remove what is at `path` for the entry to take its place; a directory stays if
   * `keepDirectory` (and true says so).
   */
  #clear(entry: Entry, path: string, keepDirectory: boolean): boolean {
    const kind = this.#lstat(entry, path)
    if (kind === undefined) return false
    if (kind === "directory" && keepDirectory) return true
    this.#remove(entry, path, kind === "directory")
    return false
  }

  #remove(entry: Entry, path: string, isDirectory: boolean): void {
    this.#changing(entry, parentOf(path))
    this.#call(
      entry,
      `removing '${path}'`,
      () => Deno.removeSync(this.#absolute(path), { recursive: isDirectory }),
    )
    // What was verified below it is gone; walk again from the root.
    if (isDirectory) this.#directories.clear()
  }

  /** What is at `path`, without following a symlink; undefined if nothing. */
  #lstat(entry: Entry, path: string): PathKind | undefined {
    // libc's lstat, not Deno's: a missing path (most of a layer's) costs no exception.
    if (libc().lstat(cString(this.#absolute(path)), this.#stat) < 0) {
      if (lastErrno() === ENOENT) return undefined
      throw fail(entry, `lstat of '${path}' failed: ${lastError()}`)
    }
    const format = this.#statView.getUint32(STAT_MODE_OFFSET, true) & S_IFMT
    return format === S_IFDIR ? "directory" : format === S_IFLNK ? "symlink" : "other"
  }

  #call(entry: Entry, what: string, call: () => void): void {
    try {
      call()
    } catch (error) {
      throw fail(entry, `${what} failed: ${reason(error)}`)
    }
  }

  #libc(entry: Entry, what: string, result: number): void {
    if (result < 0) throw fail(entry, `${what} failed: ${lastError()}`)
  }
}
