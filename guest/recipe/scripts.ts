/**
 * The guest scripts: every regular file of guest/scripts, shipped executable at
 * GUEST_SCRIPT_DIR. Each is read once, so the bytes hashed into the inputs, listed in the
 * manifest and shipped are the same bytes.
 */
import { GUEST_SCRIPT_DIR } from "../../src/domain/guest/manifest.ts"
import type { Tree } from "./initramfs.ts"
import { SCRIPTS_DIR } from "./layout.ts"
import { sha256Hex } from "./process.ts"

export interface ScriptFile {
  readonly name: string
  readonly data: Uint8Array
  readonly sha256: string
}

/** The scripts of `dir`, sorted by name; none when the directory does not exist. */
export const readScripts = async (dir: string = SCRIPTS_DIR): Promise<Array<ScriptFile>> => {
  let entries: Array<Deno.DirEntry>
  try {
    entries = await Array.fromAsync(Deno.readDir(dir))
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return []
    throw error
  }
  const names = entries.filter((entry) => entry.isFile).map((entry) => entry.name).sort()
  const scripts: Array<ScriptFile> = []
  for (const name of names) {
    const data = await Deno.readFile(`${dir}/${name}`)
    scripts.push({ name, data, sha256: await sha256Hex(data) })
  }
  return scripts
}

export const addScripts = (tree: Tree, scripts: ReadonlyArray<ScriptFile>): void => {
  for (const script of scripts) {
    tree.file(`${GUEST_SCRIPT_DIR.slice(1)}/${script.name}`, script.data, 0o755)
  }
}
