/**
 * The paths of a container image layer's entries, by the OCI image-spec's rules (layer.md): which
 * entry is a whiteout of a lower layer's file, which marks its directory opaque, and which paths
 * are refused because they would land outside the root the layer is applied to. The rules live in
 * layer_entry_rules.ts, free of imports, so that the guest's applier runs the same ones.
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import { ruleLayerEntry, ruleLayerEntryPath, type Ruling } from "./layer_entry_rules.ts"

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

const toEither = <A>(ruling: Ruling<A>): Either.Either<A, string> =>
  ruling.ok ? Either.right(ruling.value) : Either.left(ruling.reason)

/**
 * The entry's path relative to the root (`.` for the root itself), with leading, `./`, repeated
 * and trailing slashes dropped; or why it is refused (`..` anywhere, a NUL byte, nothing).
 */
export const layerEntryPath = (raw: string): Either.Either<string, string> =>
  toEither(ruleLayerEntryPath(raw))

/** What the entry at `raw` is, its path normalised; or why it is refused. */
export const classifyLayerEntry = (raw: string): Either.Either<LayerEntry, string> =>
  Either.map(toEither(ruleLayerEntry(raw)), (kind): LayerEntry => {
    switch (kind._tag) {
      case "Plain":
        return LayerEntry.Plain({ path: kind.path })
      case "Whiteout":
        return LayerEntry.Whiteout({ path: kind.path, target: kind.target })
      case "OpaqueDirectory":
        return LayerEntry.OpaqueDirectory({ path: kind.path, directory: kind.directory })
      case "AufsMetadata":
        return LayerEntry.AufsMetadata({ path: kind.path })
    }
  })
