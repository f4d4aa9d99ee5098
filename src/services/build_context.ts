/**
 * BuildContext: safe access to the sources of COPY and ADD inside BUILD_DIR.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { ContextSourceError } from "../domain/errors/build.ts"

export type EntryKind = "file" | "directory" | "symlink"

/** A source confined to the build directory. */
export interface ContextEntry {
  /** The source as the Imagefile wrote it. */
  readonly source: string
  /** Normalised, relative to BUILD_DIR, `/`-separated (`.` for BUILD_DIR itself). */
  readonly path: string
  readonly kind: EntryKind
  readonly size: number
  readonly mode: number
}

/** One node below a source, as the memory VM copies it. */
export interface ContextNode {
  /** Relative to the source (`""` for the source itself). */
  readonly path: string
  readonly kind: EntryKind
  readonly mode: number
  readonly content?: Uint8Array
  readonly target?: string
}

export interface BuildContextShape {
  /** Absolute path of BUILD_DIR. */
  readonly root: string
  /**
   * Confine and stat a source: relative, inside BUILD_DIR after resolving every symlink on the
   * way (a symlink pointing outside is refused), and present.
   */
  readonly resolve: (source: string) => Effect.Effect<ContextEntry, ContextSourceError>
  /** The tree below a resolved entry, contents included. */
  readonly walk: (
    entry: Pick<ContextEntry, "source" | "path" | "kind">,
  ) => Effect.Effect<ReadonlyArray<ContextNode>, ContextSourceError>
  /**
   * The digest of a resolved entry's content (src/domain/tree_digest.ts), read as a stream: no
   * file is held in memory, and a FIFO or device below a directory counts by its kind alone.
   */
  readonly digest: (
    entry: Pick<ContextEntry, "source" | "path" | "kind">,
  ) => Effect.Effect<string, ContextSourceError>
}

export class BuildContext extends Context.Tag("transient/BuildContext")<
  BuildContext,
  BuildContextShape
>() {}
