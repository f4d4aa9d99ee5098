/**
 * The paths of a container image layer's entries, by the OCI image-spec's rules (layer.md): which
 * entry is a whiteout of a lower layer's file, which marks its directory opaque, and which paths
 * are refused because they would land outside the root the layer is applied to.
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"

export type LayerEntry = Data.TaggedEnum<{
  /** A file, directory, link or node to create at `path`. */
  Plain: { readonly path: string }
  /** `.wh.NAME`: remove `target` (NAME, beside the marker) as the lower layers left it. */
  Whiteout: { readonly path: string; readonly target: string }
  /** `.wh..wh..opq`: hide what the lower layers put in `directory`, keep this layer's. */
  OpaqueDirectory: { readonly path: string; readonly directory: string }
  /** Other `.wh..wh.` names, and what is below them, are aufs bookkeeping: skipped, as Docker does. */
  AufsMetadata: { readonly path: string }
}>
export const LayerEntry = Data.taggedEnum<LayerEntry>()

const WHITEOUT_PREFIX = ".wh."
const AUFS_PREFIX = ".wh..wh."
const OPAQUE_MARKER = ".wh..wh..opq"

/**
 * The entry's path relative to the root (`.` for the root itself), with `./`, repeated and
 * trailing slashes dropped; or why it is refused. `..` is refused wherever it is, not resolved:
 * what it climbs out of may be a symlink by the time the entry is applied.
 */
export const layerEntryPath = (raw: string): Either.Either<string, string> => {
  if (raw === "") return Either.left("a layer entry has an empty path")
  if (raw.includes("\0")) return Either.left(`layer entry '${raw}' has a NUL byte in its path`)
  if (raw.startsWith("/")) {
    return Either.left(`layer entry '${raw}' has an absolute path; layer paths are relative`)
  }
  const parts = raw.split("/").filter((part) => part !== "" && part !== ".")
  if (parts.includes("..")) {
    return Either.left(`layer entry '${raw}' has a '..' component, which could leave the root`)
  }
  return Either.right(parts.length === 0 ? "." : parts.join("/"))
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
export const classifyLayerEntry = (raw: string): Either.Either<LayerEntry, string> =>
  Either.flatMap(layerEntryPath(raw), (path): Either.Either<LayerEntry, string> => {
    const { directory, name } = split(path)
    if (name === OPAQUE_MARKER) return Either.right(LayerEntry.OpaqueDirectory({ path, directory }))
    if (path.split("/").some((part) => part.startsWith(AUFS_PREFIX))) {
      return Either.right(LayerEntry.AufsMetadata({ path }))
    }
    if (!name.startsWith(WHITEOUT_PREFIX)) return Either.right(LayerEntry.Plain({ path }))
    const removed = name.slice(WHITEOUT_PREFIX.length)
    // `.wh.`, `.wh..` and `.wh...` would remove the directory itself or its parent.
    if (removed === "" || removed === "." || removed === "..") {
      return Either.left(
        `layer entry '${raw}' whites out '${removed}', which names no file beside it`,
      )
    }
    return Either.right(LayerEntry.Whiteout({ path, target: join(directory, removed) }))
  })
