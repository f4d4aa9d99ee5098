/** Small file-system helpers of the recipe. */

export const parentOf = (path: string): string => path.slice(0, path.lastIndexOf("/"))

export const exists = async (path: string): Promise<boolean> => {
  try {
    await Deno.lstat(path)
    return true
  } catch {
    return false
  }
}

/** The files under `dir`, relative to it, in sorted order at every level. */
export async function* walkFiles(dir: string, prefix = ""): AsyncGenerator<string> {
  const entries = [...Deno.readDirSync(`${dir}/${prefix}`)].sort((a, b) => a.name < b.name ? -1 : 1)
  for (const entry of entries) {
    const path = prefix === "" ? entry.name : `${prefix}/${entry.name}`
    if (entry.isDirectory) yield* walkFiles(dir, path)
    else yield path
  }
}
