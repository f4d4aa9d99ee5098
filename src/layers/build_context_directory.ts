/**
 * BuildContext on a real directory. Sources are confined lexically, then every symlink on the
 * way is resolved and the result must still lie inside BUILD_DIR.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ContextSourceError } from "../domain/errors.ts"
import { confineSource } from "../domain/source_path.ts"
import {
  BuildContext,
  type ContextEntry,
  type ContextNode,
  type EntryKind,
} from "../services/build_context.ts"

const kindOf = (info: Deno.FileInfo): EntryKind =>
  info.isSymlink ? "symlink" : info.isDirectory ? "directory" : "file"

const reasonOf = (source: string, error: unknown) =>
  error instanceof Deno.errors.NotFound
    ? new ContextSourceError({ source, reason: "missing" })
    : new ContextSourceError({ source, reason: "unreadable", detail: String(error) })

const inside = (root: string, path: string) => path === root || path.startsWith(root + "/")

export const BuildContextDirectory = (directory: string) =>
  Layer.effect(
    BuildContext,
    Effect.tryPromise({
      try: () => Deno.realPath(directory),
      catch: () =>
        new ContextSourceError({
          source: directory,
          reason: "missing",
          detail: "the build directory",
        }),
    }).pipe(Effect.map((root) => {
      const resolve = (source: string): Effect.Effect<ContextEntry, ContextSourceError> => {
        const confined = confineSource(source)
        if ("refused" in confined) {
          return Effect.fail(
            new ContextSourceError({ source, reason: "escapes", detail: confined.refused }),
          )
        }
        return Effect.tryPromise({
          try: async () => {
            const real = await Deno.realPath(`${root}/${confined.path}`)
            return { real, info: await Deno.stat(real) }
          },
          catch: (error) => reasonOf(source, error),
        }).pipe(
          Effect.filterOrFail(
            ({ real }) => inside(root, real),
            ({ real }) =>
              new ContextSourceError({
                source,
                reason: "escapes",
                detail: `it resolves to ${real}`,
              }),
          ),
          Effect.map(({ real, info }) => ({
            source,
            path: real === root ? "." : real.slice(root.length + 1),
            kind: kindOf(info),
            size: info.size,
            mode: (info.mode ?? 0o644) & 0o7777,
          })),
        )
      }

      const walk = (entry: Pick<ContextEntry, "source" | "path" | "kind">) =>
        Effect.tryPromise({
          try: async () => {
            const nodes: Array<ContextNode> = []
            const visit = async (relative: string) => {
              const path = relative === ""
                ? `${root}/${entry.path}`
                : `${root}/${entry.path}/${relative}`
              const info = await Deno.lstat(path)
              const kind = kindOf(info)
              const mode = (info.mode ?? 0) & 0o7777
              if (kind === "file") {
                nodes.push({ path: relative, kind, mode, content: await Deno.readFile(path) })
              } else if (kind === "symlink") {
                nodes.push({ path: relative, kind, mode, target: await Deno.readLink(path) })
              } else {
                nodes.push({ path: relative, kind, mode })
                const names: Array<string> = []
                for await (const child of Deno.readDir(path)) {
                  names.push(child.name)
                }
                for (const name of names.sort()) {
                  await visit(relative === "" ? name : `${relative}/${name}`)
                }
              }
            }
            await visit("")
            return nodes as ReadonlyArray<ContextNode>
          },
          catch: (error) => reasonOf(entry.source, error),
        })

      return { root, resolve, walk }
    })),
  )
