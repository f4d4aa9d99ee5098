/**
 * The store's `.working/` directory: private files of the processes at work, named after the
 * image and the owning process, and one lock file per image name.
 *
 * A working file is `<encoded name>.<pid>.<random>.<kind>`. Nothing ever trusts one: a process
 * only uses the files it created itself, and removes them when its scope closes; files of
 * processes that no longer run (killed, crashed) are removed by the next store that opens.
 */

export const WORKING = ".working"

/** A fresh working-file name for `encodedName`, owned by this process. */
export const workingFileName = (encodedName: string, kind: string): string =>
  `${encodedName}.${Deno.pid}.${crypto.randomUUID()}.${kind}`

export const lockFileName = (encodedName: string): string => `${encodedName}.lock`

/** The pid a working-file name carries (encoded names contain no dots that precede digits only). */
export const ownerOf = (fileName: string): number | undefined => {
  const match = /\.(\d+)\.[0-9a-f-]{36}\.[a-z0-9]+$/.exec(fileName)
  return match ? Number(match[1]) : undefined
}

const isRunning = (pid: number): boolean => {
  if (pid === Deno.pid) return true
  try {
    Deno.statSync(`/proc/${pid}`)
    return true
  } catch {
    return false
  }
}

/** Remove the working files whose process is gone; returns their names. */
export const sweepStale = async (workingDir: string): Promise<ReadonlyArray<string>> => {
  const removed: Array<string> = []
  for await (const entry of Deno.readDir(workingDir)) {
    const owner = ownerOf(entry.name)
    if (owner === undefined || isRunning(owner)) continue
    try {
      await Deno.remove(`${workingDir}/${entry.name}`)
      removed.push(entry.name)
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error
    }
  }
  return removed
}

/** Remove a file if it is there. */
export const removeIfPresent = async (path: string): Promise<void> => {
  try {
    await Deno.remove(path)
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error
  }
}
