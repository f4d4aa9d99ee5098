/**
 * Freeze and thaw, in the agent's own process: before the host snapshots the disk, each of the
 * image's filesystems mounted at or below the build root is frozen (deepest first), which
 * flushes it, so that the snapshot holds it clean; one that cannot be frozen (vfat) is flushed
 * with sync instead. The chroot's own mounts (proc, sysfs, tmpfs) are not on the disk and are
 * left alone. These are the FIFREEZE and FITHAW ioctls through libc: a process per snapshot
 * (fsfreeze) costs about 200 ms under TCG, and a snapshot comes after every step.
 */
import { ioctlOn, libc, O_CLOEXEC, O_DIRECTORY, O_RDONLY } from "./libc.ts"

const FIFREEZE = 0xc0045877n
const FITHAW = 0xc0045878n

/** `request` on the directory `point`; the reason when it fails. */
const ioctlOnDirectory = (point: string, request: bigint): string | undefined =>
  ioctlOn(point, O_RDONLY | O_DIRECTORY | O_CLOEXEC, request)

/** A field of /proc/mounts, whose spaces, tabs, newlines and backslashes are octal escapes. */
export const unescapeMountField = (field: string): string =>
  field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)))

/** The disk filesystems mounted at or below `root` in `mounts` (/proc/mounts), deepest first. */
export const mountsUnder = (mounts: string, root: string): Array<string> => {
  const points: Array<string> = []
  for (const line of mounts.split("\n")) {
    const [device, field] = line.split(" ")
    if (device === undefined || field === undefined || !device.startsWith("/dev/")) continue
    const point = unescapeMountField(field)
    // /proc/mounts lists mounts in the order they were made: the later ones are the deeper.
    if (point === root || point.startsWith(`${root}/`)) points.unshift(point)
  }
  return points
}

/** What `freeze` froze, for `thaw`. */
let frozen: Array<string> = []

/** Freeze the disk filesystems under `root`; sync if one of them cannot be frozen. */
export const freeze = (root: string): void => {
  let flushed = true
  for (const point of mountsUnder(Deno.readTextFileSync("/proc/mounts"), root)) {
    if (ioctlOnDirectory(point, FIFREEZE) === undefined) frozen.push(point)
    else flushed = false
  }
  if (!flushed) libc().sync()
}

/** Thaw what `freeze` froze: the problems, one line each (none when all went well). */
export const thaw = (): Array<string> => {
  const problems: Array<string> = []
  for (const point of frozen) {
    const problem = ioctlOnDirectory(point, FITHAW)
    if (problem !== undefined) problems.push(`cannot thaw ${point}: ${problem}`)
  }
  frozen = []
  return problems
}
