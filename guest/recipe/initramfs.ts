/**
 * The initramfs: a tree of entries by path, the links, directories and device nodes every one
 * starts with, and the archive written from it.
 */
import type { Compression } from "../../src/domain/guest/manifest.ts"
import { type CpioEntry, writeCpio } from "./cpio.ts"
import { fail } from "./process.ts"
import type { PinnedTool } from "./sysroot.ts"

/** The entries of the initramfs, by path; parents are added when the archive is written. */
export class Tree {
  readonly entries = new Map<string, CpioEntry>()
  add(entry: CpioEntry) {
    const existing = this.entries.get(entry.path)
    if (existing !== undefined && existing.kind !== "directory") {
      fail(`two files want ${entry.path} in the initramfs`)
    }
    this.entries.set(entry.path, entry)
  }
  file(path: string, data: Uint8Array, mode = 0o644) {
    this.add({ kind: "file", path, mode, data })
  }
  symlink(path: string, target: string) {
    this.add({ kind: "symlink", path, target })
  }
  /** All entries, with every missing parent directory added as 0755. */
  complete(): Array<CpioEntry> {
    const all = new Map(this.entries)
    for (const path of this.entries.keys()) {
      const parts = path.split("/")
      for (let depth = 1; depth < parts.length; depth++) {
        const parent = parts.slice(0, depth).join("/")
        if (!all.has(parent)) all.set(parent, { kind: "directory", path: parent, mode: 0o755 })
      }
    }
    return [...all.values()]
  }
}

/** A tree with the merged-/usr links, the mount points and the two device nodes init needs. */
export const skeletonTree = (): Tree => {
  const tree = new Tree()
  for (
    const [link, target] of [
      ["bin", "usr/bin"],
      ["sbin", "usr/bin"],
      ["usr/sbin", "bin"],
      ["lib", "usr/lib"],
      ["lib64", "usr/lib64"],
    ] as const
  ) tree.symlink(link, target)
  tree.symlink("usr/lib64/ld-linux-x86-64.so.2", "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
  for (
    const dir of ["dev", "proc", "sys", "run", "tmp", "mnt", "context", "root", "opt/transient"]
  ) {
    tree.add({ kind: "directory", path: dir, mode: dir === "tmp" ? 0o1777 : 0o755 })
  }
  tree.add({ kind: "char", path: "dev/console", mode: 0o600, major: 5, minor: 1 })
  tree.add({ kind: "char", path: "dev/null", mode: 0o666, major: 1, minor: 3 })
  return tree
}

/** The newc archive of `tree`, compressed with the pinned zstd or gzip if asked. */
export const archiveTree = (
  tree: Tree,
  compression: Compression,
  tool: PinnedTool,
): Promise<Uint8Array> => {
  const archive = writeCpio(tree.complete())
  switch (compression) {
    case "none":
      return Promise.resolve(archive)
    case "zstd":
      return tool("/usr/bin/zstd", ["-q", "-19", "-T1", "-c", "-"], { stdin: archive })
    case "gzip":
      return tool("/bin/gzip", ["-n", "-9", "-c"], { stdin: archive })
  }
}
