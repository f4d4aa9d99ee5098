/**
 * A filesystem as a tree in memory: the simulated guest's partitions and the memory build
 * context are made of these.
 */
import { normalizeAbsolute } from "../../domain/source_path.ts"

export type SimNode =
  | {
    readonly kind: "file"
    readonly content: Uint8Array
    readonly mode: number
    readonly uid: number
    readonly gid: number
  }
  | {
    readonly kind: "directory"
    readonly mode: number
    readonly uid: number
    readonly gid: number
  }
  | {
    readonly kind: "symlink"
    readonly target: string
    readonly mode: number
    readonly uid: number
    readonly gid: number
  }

/** Paths are absolute within the filesystem (`/`, `/etc/fstab`), without a trailing slash. */
export type SimTree = Map<string, SimNode>

export const rootDirectory = (): SimNode => ({ kind: "directory", mode: 0o755, uid: 0, gid: 0 })

export const newTree = (): SimTree => new Map([["/", rootDirectory()]])

/** `/a//b/./c/` -> `/a/b/c`; `..` climbs but never above `/`. */
export const normalize = normalizeAbsolute

export const join = (base: string, relative: string): string => normalize(`${base}/${relative}`)

export const dirname = (path: string): string => normalize(path + "/..")

export const basename = (path: string): string => normalize(path).split("/").pop() ?? ""

/** Create `path` and its missing parents as directories (0755, root-owned). */
export const mkdirs = (tree: SimTree, path: string): void => {
  const target = normalize(path)
  if (tree.get(target)?.kind === "directory") return
  if (target !== "/") mkdirs(tree, dirname(target))
  tree.set(target, rootDirectory())
}

export const isDirectory = (tree: SimTree, path: string): boolean =>
  tree.get(normalize(path))?.kind === "directory"

/** Put a node at `path`, creating its parents; a directory there keeps its children. */
export const put = (tree: SimTree, path: string, node: SimNode): void => {
  const target = normalize(path)
  mkdirs(tree, dirname(target))
  tree.set(target, node)
}

/** Every path strictly below `path`. */
export const childrenOf = (tree: SimTree, path: string): ReadonlyArray<string> => {
  const prefix = normalize(path) === "/" ? "/" : normalize(path) + "/"
  return [...tree.keys()].filter((key) => key !== "/" && key.startsWith(prefix))
}

export const cloneTree = (tree: SimTree): SimTree => new Map(tree)
