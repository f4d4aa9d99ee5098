/**
 * The OCI image-spec's rules (layer.md) for the paths of a container image layer's entries, with
 * no imports: the guest's layer applier (guest/apply_layer.ts) runs them where no package is
 * available. src/domain/whiteout.ts gives them to the host as Effect data.
 */

/** What an entry is: the variants of `LayerEntry` in src/domain/whiteout.ts, as plain objects. */
export type LayerEntryKind =
  | { readonly _tag: "Plain"; readonly path: string }
  | { readonly _tag: "Whiteout"; readonly path: string; readonly target: string }
  | { readonly _tag: "OpaqueDirectory"; readonly path: string; readonly directory: string }
  | { readonly _tag: "AufsMetadata"; readonly path: string }

/** A value, or why there is none. */
export type Ruling<A> =
  | { readonly ok: true; readonly value: A }
  | { readonly ok: false; readonly reason: string }

const allow = <A>(value: A): Ruling<A> => ({ ok: true, value })
const refuse = (reason: string): Ruling<never> => ({ ok: false, reason })

const WHITEOUT_PREFIX = ".wh."
const AUFS_PREFIX = ".wh..wh."
const OPAQUE_MARKER = ".wh..wh..opq"

/**
 * The entry's path relative to the root (`.` for the root itself), with leading, `./`, repeated
 * and trailing slashes dropped (an absolute path is taken relative to the root, as tar does); or
 * why it is refused. `..` is refused wherever it is, not resolved: what it climbs out of may be a
 * symlink by the time the entry is applied.
 */
export const ruleLayerEntryPath = (raw: string): Ruling<string> => {
  if (raw === "") return refuse("a layer entry has an empty path")
  if (raw.includes("\0")) return refuse(`layer entry '${raw}' has a NUL byte in its path`)
  const parts = raw.split("/").filter((part) => part !== "" && part !== ".")
  if (parts.includes("..")) {
    return refuse(`layer entry '${raw}' has a '..' component, which could leave the root`)
  }
  return allow(parts.length === 0 ? "." : parts.join("/"))
}

const split = (path: string): { readonly directory: string; readonly name: string } => {
  const slash = path.lastIndexOf("/")
  return slash === -1
    ? { directory: ".", name: path }
    : { directory: path.slice(0, slash), name: path.slice(slash + 1) }
}

const join = (directory: string, name: string): string =>
  directory === "." ? name : `${directory}/${name}`

/** What the entry at `raw` is, its path normalised; or why it is refused. */
export const ruleLayerEntry = (raw: string): Ruling<LayerEntryKind> => {
  const ruled = ruleLayerEntryPath(raw)
  if (!ruled.ok) return ruled
  const path = ruled.value
  const { directory, name } = split(path)
  if (name === OPAQUE_MARKER) return allow({ _tag: "OpaqueDirectory", path, directory })
  if (path.split("/").some((part) => part.startsWith(AUFS_PREFIX))) {
    return allow({ _tag: "AufsMetadata", path })
  }
  if (!name.startsWith(WHITEOUT_PREFIX)) return allow({ _tag: "Plain", path })
  const removed = name.slice(WHITEOUT_PREFIX.length)
  // `.wh.`, `.wh..` and `.wh...` would remove the directory itself or its parent.
  if (removed === "" || removed === "." || removed === "..") {
    return refuse(`layer entry '${raw}' whites out '${removed}', which names no file beside it`)
  }
  return allow({ _tag: "Whiteout", path, target: join(directory, removed) })
}
