/**
 * BuildContext in memory: BUILD_DIR as a SimTree that tests write.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ContextSourceError } from "../../domain/errors/build.ts"
import { confineSource } from "../../domain/source_path.ts"
import { TreeDigest } from "../../domain/tree_digest.ts"
import { BuildContext, type ContextNode } from "../../services/build_context.ts"
import { childrenOf, dirname, join, normalize, type SimTree } from "./sim_fs.ts"

/** The longest chain of symlinks followed before a source is refused as a loop. */
const MAX_LINKS = 40

/** Resolve every symlink along `path` inside the tree; undefined when it leaves the root. */
const realPath = (tree: SimTree, path: string, depth = 0): string | undefined => {
  if (depth > MAX_LINKS) return undefined
  let resolved = "/"
  for (const part of normalize(path).split("/").filter((p) => p !== "")) {
    const next = join(resolved, part)
    const node = tree.get(next)
    if (node?.kind !== "symlink") {
      resolved = next
      continue
    }
    // An absolute target, or a relative one that climbs above the root, leaves BUILD_DIR.
    const target = confineSource(`${dirname(next).slice(1)}/${node.target}`)
    if (node.target.startsWith("/") || "refused" in target) return undefined
    const inner = realPath(tree, target.path === "." ? "/" : `/${target.path}`, depth + 1)
    if (inner === undefined) return undefined
    resolved = inner
  }
  return resolved
}

/** The nodes below `entry`, the entry first, in sorted order. */
const walk = (tree: SimTree, entry: { readonly path: string; readonly kind: string }) =>
  Effect.sync(() => {
    const base = entry.path === "." ? "/" : `/${entry.path}`
    const nodes: Array<ContextNode> = []
    const paths = [base, ...(entry.kind === "directory" ? childrenOf(tree, base) : [])].sort()
    for (const path of paths) {
      const node = tree.get(path)
      if (!node) continue
      const relative = path === base ? "" : path.slice(base === "/" ? 1 : base.length + 1)
      nodes.push({
        path: relative,
        kind: node.kind,
        mode: node.mode,
        ...(node.kind === "file" ? { content: node.content } : {}),
        ...(node.kind === "symlink" ? { target: node.target } : {}),
      })
    }
    return nodes
  })

export const BuildContextMemory = (tree: SimTree, root = "/context") =>
  Layer.succeed(BuildContext, {
    root,
    resolve: (source) => {
      const confined = confineSource(source)
      if ("refused" in confined) {
        return Effect.fail(
          new ContextSourceError({ source, reason: "escapes", detail: confined.refused }),
        )
      }
      const real = realPath(tree, confined.path)
      if (real === undefined) {
        return Effect.fail(
          new ContextSourceError({ source, reason: "escapes", detail: "through a symlink" }),
        )
      }
      const node = tree.get(real)
      if (!node) return Effect.fail(new ContextSourceError({ source, reason: "missing" }))
      return Effect.succeed({
        source,
        path: real === "/" ? "." : real.slice(1),
        kind: node.kind,
        size: node.kind === "file" ? node.content.length : 0,
        mode: node.mode,
      })
    },
    walk: (entry) => walk(tree, entry),
    digest: (entry) =>
      Effect.map(walk(tree, entry), (nodes) => {
        const digest = new TreeDigest()
        for (const node of nodes) {
          digest.node(node.path, node.kind, node.mode, node.target)
          if (node.content) {
            digest.content(node.content)
            digest.end(node.content.length)
          }
        }
        return digest.digest()
      }),
  })
