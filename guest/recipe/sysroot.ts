/**
 * The tree the recipe unpacks the pinned packages into (a sysroot, and one for the kernel), and
 * running its programs through its own dynamic loader rather than the host's.
 */
import { fetchDeb, type Pin, pinFor, unpackDeb } from "./debs.ts"
import { exists } from "./files.ts"
import { CACHE_DIR } from "./layout.ts"
import { fail, runBytes } from "./process.ts"

/** Tools and libraries searched for here, in the unpacked packages. */
export const LIBRARY_DIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"]
export const LOADER = "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"

/** Follow symlinks inside `root` as if it were `/`; undefined when the path does not exist. */
export const resolveIn = (root: string, path: string): string | undefined => {
  let pending = path.split("/").filter((part) => part !== "")
  let resolved: Array<string> = []
  for (let hops = 0; pending.length > 0;) {
    const part = pending.shift()!
    if (part === ".") continue
    if (part === "..") {
      resolved.pop()
      continue
    }
    const candidate = [...resolved, part]
    let info: Deno.FileInfo
    try {
      info = Deno.lstatSync(`${root}/${candidate.join("/")}`)
    } catch {
      return undefined
    }
    if (!info.isSymlink) {
      resolved = candidate
      continue
    }
    if (++hops > 40) fail(`too many symlinks resolving ${path}`)
    const target = Deno.readLinkSync(`${root}/${candidate.join("/")}`)
    if (target.startsWith("/")) resolved = []
    pending = [...target.split("/").filter((p) => p !== ""), ...pending]
  }
  return `/${resolved.join("/")}`
}

/** A program of the unpacked packages, run to completion; resolves to its stdout. */
export type PinnedTool = (
  program: string,
  args: ReadonlyArray<string>,
  options?: { readonly env?: Record<string, string>; readonly stdin?: Uint8Array },
) => Promise<Uint8Array>

/** Run a program of the unpacked packages through their own dynamic loader. */
export const pinnedTool = (sysroot: string): PinnedTool => (program, args, options = {}) => {
  const path = resolveIn(sysroot, program) ?? fail(`no ${program} in the pinned packages`)
  return runBytes([
    `${sysroot}${LOADER}`,
    "--library-path",
    LIBRARY_DIRS.map((dir) => `${sysroot}${dir}`).join(":"),
    "--argv0",
    program.split("/").pop()!,
    `${sysroot}${path}`,
    ...args,
  ], options)
}

/** Unpack the pinned packages once per set of pins: one tree for the kernel, one for the rest. */
export const unpackAll = async (pins: ReadonlyArray<Pin>, pinsHash: string) => {
  const kernelPin = pins.find((pin) => pinFor(pin, "linux-image-amd64"))!
  const sysroot = `${CACHE_DIR}/sysroot-${pinsHash.slice(0, 16)}`
  const kernelRoot = `${CACHE_DIR}/kernel-${kernelPin.sha256.slice(0, 16)}`
  const debs = new Map<string, string>()
  for (const pin of pins) debs.set(pin.name, await fetchDeb(pin, `${CACHE_DIR}/debs`))
  if (!(await exists(sysroot))) {
    const partial = `${sysroot}.partial`
    await Deno.remove(partial, { recursive: true }).catch(() => {})
    for (const pin of pins) if (pin !== kernelPin) await unpackDeb(debs.get(pin.name)!, partial)
    await Deno.rename(partial, sysroot)
  }
  if (!(await exists(kernelRoot))) {
    const partial = `${kernelRoot}.partial`
    await Deno.remove(partial, { recursive: true }).catch(() => {})
    await unpackDeb(debs.get(kernelPin.name)!, partial)
    await Deno.rename(partial, kernelRoot)
  }
  const kernelVersion = kernelPin.name.replace(/^linux-image-/, "")
  return { sysroot, kernelRoot, kernelVersion }
}
