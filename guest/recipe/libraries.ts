/** The shared libraries of the initramfs, found from the programs' ELF DT_NEEDED entries. */
import { elfDependencies } from "./elf.ts"
import type { Tree } from "./initramfs.ts"
import { fail } from "./process.ts"
import { LIBRARY_DIRS, resolveIn } from "./sysroot.ts"

/** Add the shared libraries that `programs` need, transitively; a missing one fails the build. */
export const addLibraries = async (
  tree: Tree,
  sysroot: string,
  programs: ReadonlyArray<string>,
): Promise<void> => {
  const missing: Array<string> = []
  const seen = new Set<string>()
  const pending = [...programs]
  while (pending.length > 0) {
    const file = pending.pop()!
    const dependencies = elfDependencies(await Deno.readFile(file))
    if (dependencies === undefined) continue
    for (const soname of dependencies.needed) {
      if (seen.has(soname)) continue
      seen.add(soname)
      const found = LIBRARY_DIRS.map((dir) => resolveIn(sysroot, `${dir}/${soname}`))
        .find((path) => path !== undefined)
      if (found === undefined) {
        missing.push(`${file.slice(sysroot.length)} needs ${soname}`)
        continue
      }
      const mode = (await Deno.stat(`${sysroot}${found}`)).mode! & 0o7777
      tree.file(
        `usr/lib/x86_64-linux-gnu/${soname}`,
        await Deno.readFile(`${sysroot}${found}`),
        mode,
      )
      pending.push(`${sysroot}${found}`)
    }
  }
  if (missing.length > 0) {
    fail(
      `no pinned package provides these libraries (add it to PACKAGES):\n  ${missing.join("\n  ")}`,
    )
  }
}
