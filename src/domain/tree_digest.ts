/**
 * The digest of a COPY/ADD source's content, for step-cache keys: each node's path (relative to
 * the source), kind, permission bits, symlink target and bytes, in sorted order. Timestamps and
 * owners are not part of it, so touching a file changes nothing.
 */
import { createHash, type Hash } from "node:crypto"

export type TreeNodeKind = "file" | "directory" | "symlink" | "special"

/** Feeds a tree's nodes, parents before children and siblings in sorted order, into one digest. */
export class TreeDigest {
  readonly #hash: Hash = createHash("sha256")

  /** A node; a file's bytes follow through `content`, then `end`. */
  node(path: string, kind: TreeNodeKind, mode: number, target?: string): void {
    this.#hash.update(JSON.stringify([path, kind, mode & 0o7777, target ?? null]))
  }

  content(chunk: Uint8Array): void {
    this.#hash.update(chunk)
  }

  /** The end of a file's bytes, with their count (so that bytes cannot pass for a next node). */
  end(size: number): void {
    this.#hash.update(`\0${size}\0`)
  }

  digest(): string {
    return this.#hash.digest("hex")
  }
}
