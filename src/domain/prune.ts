/**
 * Which cached layers a prune removes: all of them, or the least recently used until the rest
 * fit in a number of bytes.
 */

/** What pruning needs to know of a layer. */
export interface PrunableLayer {
  readonly key: string
  /** The parent's key; absent for a first layer. */
  readonly parent?: string
  readonly sizeBytes: number
  readonly lastUsedMs: number
}

export interface PruneLimit {
  /** Remove every layer. */
  readonly all: boolean
  /** Otherwise remove the least recently used layers until the rest take at most this. */
  readonly keepBytes?: number
}

/** The layers to remove, in the order they go: least recently used first. */
export const pruneOrder = <L extends PrunableLayer>(
  layers: ReadonlyArray<L>,
  { all, keepBytes }: PruneLimit,
): ReadonlyArray<L> => {
  if (all) return layers
  if (keepBytes === undefined) return []
  // A child is never used without its parent: among equals, the deeper goes first.
  const depth = new Map<string, number>()
  const byKey = new Map(layers.map((layer) => [layer.key, layer]))
  const depthOf = (layer: L, seen = 0): number => {
    const known = depth.get(layer.key)
    if (known !== undefined) return known
    const parent = layer.parent === undefined ? undefined : byKey.get(layer.parent)
    const value = parent === undefined || seen > layers.length ? 0 : depthOf(parent, seen + 1) + 1
    depth.set(layer.key, value)
    return value
  }
  const ordered = [...layers].sort((a, b) =>
    a.lastUsedMs - b.lastUsedMs || depthOf(b) - depthOf(a) || a.key.localeCompare(b.key)
  )
  let total = layers.reduce((sum, layer) => sum + layer.sizeBytes, 0)
  const removed: Array<L> = []
  for (const layer of ordered) {
    if (total <= keepBytes) break
    removed.push(layer)
    total -= layer.sizeBytes
  }
  return removed
}
