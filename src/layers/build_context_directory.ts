/**
 * BuildContext on a real directory. Sources are confined lexically, then every symlink on the
 * way is resolved and the result must still lie inside BUILD_DIR; only files, directories and
 * symlinks are sources (a FIFO would hang the copy, a device never end).
 */
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { ContextSourceError } from "../domain/errors/build.ts"
import { confineSource } from "../domain/source_path.ts"
import { TreeDigest } from "../domain/tree_digest.ts"
import {
  BuildContext,
  type ContextEntry,
  type ContextNode,
  type EntryKind,
} from "../services/build_context.ts"

const SPECIAL: Partial<Record<FileSystem.File.Type, string>> = {
  FIFO: "a FIFO",
  Socket: "a socket",
  CharacterDevice: "a character device",
  BlockDevice: "a block device",
  Unknown: "not a file, directory or symlink",
}

const reasonOf = (source: string) => (error: PlatformError) =>
  error._tag === "SystemError" && error.reason === "NotFound"
    ? new ContextSourceError({ source, reason: "missing" })
    : new ContextSourceError({ source, reason: "unreadable", detail: error.message })

const inside = (root: string, path: string) => path === root || path.startsWith(root + "/")

// Long: the context's operations, each short, share its root and file system.
export const BuildContextDirectory = (
  directory: string,
): Layer.Layer<BuildContext, ContextSourceError, FileSystem.FileSystem | Path.Path> =>
  Layer.effect(
    BuildContext,
    Effect.gen(function* () {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const root = yield* fs.realPath(directory).pipe(
        Effect.mapError(() =>
          new ContextSourceError({
            source: directory,
            reason: "missing",
            detail: "the build directory",
          })
        ),
      )

      /** What is at `file` itself (a symlink is not followed): its kind and its info. */
      const kindAt = (file: string) =>
        fs.readLink(file).pipe(
          Effect.map((target) => ({ kind: "symlink" as EntryKind, target })),
          Effect.orElse(() =>
            Effect.map(fs.stat(file), (info) => ({
              kind: (info.type === "Directory" ? "directory" : "file") as EntryKind,
              info,
            }))
          ),
        )

      const resolve = Effect.fn("BuildContext.resolve")(function* (source: string) {
        const confined = confineSource(source)
        if ("refused" in confined) {
          return yield* new ContextSourceError({
            source,
            reason: "escapes",
            detail: confined.refused,
          })
        }
        const real = yield* fs.realPath(path.join(root, confined.path)).pipe(
          Effect.mapError(reasonOf(source)),
        )
        if (!inside(root, real)) {
          return yield* new ContextSourceError({
            source,
            reason: "escapes",
            detail: `it resolves to ${real}`,
          })
        }
        const info = yield* fs.stat(real).pipe(Effect.mapError(reasonOf(source)))
        const special = SPECIAL[info.type]
        if (special !== undefined) {
          return yield* new ContextSourceError({ source, reason: "special", detail: special })
        }
        return {
          source,
          path: real === root ? "." : real.slice(root.length + 1),
          kind: info.type === "Directory" ? "directory" : "file",
          size: Number(info.size),
          mode: info.mode & 0o7777,
        } satisfies ContextEntry
      })

      /** The file at `relative` (`""` for the entry itself) below a resolved entry. */
      const fileBelow = (entry: Pick<ContextEntry, "path">, relative: string) =>
        relative === "" ? path.join(root, entry.path) : path.join(root, entry.path, relative)

      const walk = (entry: Pick<ContextEntry, "source" | "path" | "kind">) => {
        const visit = (relative: string): Effect.Effect<Array<ContextNode>, PlatformError> =>
          Effect.gen(function* () {
            const file = fileBelow(entry, relative)
            const at = yield* kindAt(file)
            if (at.kind === "symlink" && "target" in at) {
              return [{ path: relative, kind: at.kind, mode: 0o777, target: at.target }]
            }
            const mode = "info" in at ? at.info.mode & 0o7777 : 0
            if (at.kind === "file") {
              return [{ path: relative, kind: at.kind, mode, content: yield* fs.readFile(file) }]
            }
            const names = (yield* fs.readDirectory(file)).sort()
            const below = yield* Effect.forEach(
              names,
              (name) => visit(relative === "" ? name : `${relative}/${name}`),
            )
            return [{ path: relative, kind: at.kind, mode }, ...below.flat()]
          })
        return visit("").pipe(
          Effect.map((nodes): ReadonlyArray<ContextNode> => nodes),
          Effect.mapError(reasonOf(entry.source)),
        )
      }

      const digest = (entry: Pick<ContextEntry, "source" | "path" | "kind">) => {
        const tree = new TreeDigest()
        const visit = (relative: string): Effect.Effect<void, PlatformError> =>
          Effect.gen(function* () {
            const file = fileBelow(entry, relative)
            const at = yield* kindAt(file)
            if (at.kind === "symlink" && "target" in at) {
              return tree.node(relative, "symlink", 0o777, at.target)
            }
            const info = "info" in at ? at.info : undefined
            const mode = info ? info.mode & 0o7777 : 0
            if (info?.type === "Directory") {
              tree.node(relative, "directory", mode)
              const names = (yield* fs.readDirectory(file)).sort()
              for (const name of names) yield* visit(relative === "" ? name : `${relative}/${name}`)
              return
            }
            if (info?.type !== "File") return tree.node(relative, "special", mode)
            tree.node(relative, "file", mode)
            let size = 0
            yield* fs.stream(file).pipe(Stream.runForEach((chunk) =>
              Effect.sync(() => {
                size += chunk.length
                tree.content(chunk)
              })
            ))
            tree.end(size)
          })
        return visit("").pipe(
          Effect.map(() => tree.digest()),
          Effect.mapError(reasonOf(entry.source)),
        )
      }

      return { root, resolve, walk, digest }
    }),
  )
