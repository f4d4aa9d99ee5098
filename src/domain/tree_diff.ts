/**
 * What differs between two file trees (two images' filesystems, listed entry by entry): paths
 * added and removed, and for a path in both, which of its properties changed — type, content,
 * mode, owner, link target, device numbers, extended attributes, modification time. What
 * `transient image diff` reports, and where a user looks to learn why two builds differ. Pure.
 */

export type EntryType = "file" | "directory" | "symlink" | "char" | "block" | "fifo" | "socket"

/** One path of a tree as a listing gives it (paths relative to the filesystem's root). */
export interface TreeEntry {
  readonly path: string
  readonly type: EntryType
  /** The permission bits with setuid, setgid and sticky (0o7777). */
  readonly mode: number
  readonly uid: number
  readonly gid: number
  /** Regular files: size and sha256 of the content. */
  readonly size?: number
  readonly sha256?: string
  /** Symlinks: the target as stored. */
  readonly target?: string
  /** Devices: `MAJOR:MINOR`. */
  readonly device?: string
  /** Extended attributes, name to value (hex). */
  readonly xattrs: Readonly<Record<string, string>>
  /** Modification time in nanoseconds since 1970, as a decimal string (more than 2^53). */
  readonly mtime: string
}

export type ChangedProperty =
  | "type"
  | "content"
  | "mode"
  | "owner"
  | "target"
  | "device"
  | "xattrs"
  | "mtime"

export type TreeChange =
  | { readonly path: string; readonly change: "added"; readonly after: TreeEntry }
  | { readonly path: string; readonly change: "removed"; readonly before: TreeEntry }
  | {
    readonly path: string
    readonly change: "changed"
    readonly properties: ReadonlyArray<ChangedProperty>
    readonly before: TreeEntry
    readonly after: TreeEntry
  }

const sameXattrs = (a: TreeEntry["xattrs"], b: TreeEntry["xattrs"]): boolean => {
  const names = Object.keys(a)
  return names.length === Object.keys(b).length && names.every((name) => a[name] === b[name])
}

/** The properties of one path that differ; a change of type says it all. */
const changedProperties = (before: TreeEntry, after: TreeEntry): Array<ChangedProperty> => {
  if (before.type !== after.type) return ["type"]
  const changed: Array<ChangedProperty> = []
  if (before.size !== after.size || before.sha256 !== after.sha256) changed.push("content")
  if (before.mode !== after.mode) changed.push("mode")
  if (before.uid !== after.uid || before.gid !== after.gid) changed.push("owner")
  if (before.target !== after.target) changed.push("target")
  if (before.device !== after.device) changed.push("device")
  if (!sameXattrs(before.xattrs, after.xattrs)) changed.push("xattrs")
  if (before.mtime !== after.mtime) changed.push("mtime")
  return changed
}

/** Every difference from `before` to `after`, in path order. */
export const diffTrees = (
  before: ReadonlyArray<TreeEntry>,
  after: ReadonlyArray<TreeEntry>,
): Array<TreeChange> => {
  const old = new Map(before.map((entry) => [entry.path, entry]))
  const now = new Map(after.map((entry) => [entry.path, entry]))
  const paths = [...new Set([...old.keys(), ...now.keys()])].sort()
  return paths.flatMap((path): Array<TreeChange> => {
    const a = old.get(path)
    const b = now.get(path)
    if (a === undefined) return [{ path, change: "added", after: b! }]
    if (b === undefined) return [{ path, change: "removed", before: a }]
    const properties = changedProperties(a, b)
    return properties.length === 0
      ? []
      : [{ path, change: "changed", properties, before: a, after: b }]
  })
}

const octal = (mode: number) => mode.toString(8).padStart(4, "0")

/** What changed in one property, `before → after`, as a line shows it. */
const shownProperty = (property: ChangedProperty, a: TreeEntry, b: TreeEntry): string => {
  switch (property) {
    case "type":
      return `type ${a.type} → ${b.type}`
    case "content":
      return `content (${a.size ?? 0} → ${b.size ?? 0} bytes)`
    case "mode":
      return `mode ${octal(a.mode)} → ${octal(b.mode)}`
    case "owner":
      return `owner ${a.uid}:${a.gid} → ${b.uid}:${b.gid}`
    case "target":
      return `target ${a.target} → ${b.target}`
    case "device":
      return `device ${a.device} → ${b.device}`
    case "xattrs": {
      const names = [...new Set([...Object.keys(a.xattrs), ...Object.keys(b.xattrs)])].sort()
      return `xattrs ${names.filter((name) => a.xattrs[name] !== b.xattrs[name]).join(", ")}`
    }
    case "mtime":
      return "mtime"
  }
}

/** One line per change: `+ path`, `- path`, `~ path: what changed`. */
export const describeTreeChange = (change: TreeChange): string => {
  switch (change.change) {
    case "added":
      return `+ ${change.path}`
    case "removed":
      return `- ${change.path}`
    case "changed":
      return `~ ${change.path}: ${
        change.properties.map((property) => shownProperty(property, change.before, change.after))
          .join(", ")
      }`
  }
}
