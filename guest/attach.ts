/**
 * What the helper VM takes from its host before a build's first command, in the agent's own
 * process. A VM may have been restored from a state saved by an earlier build (see
 * src/layers/qemu/vm_state.ts): its clock stopped when that state was saved, its random number
 * generator is the saved one, and its build disk and context are this build's. So, booted or
 * restored alike:
 *
 * - the clock is set to the host's time;
 * - the host's random bytes are mixed into the kernel's pool, which is then reseeded, so that no
 *   two VMs restored from one state draw the same numbers (file system UUIDs, keys);
 * - the build context (virtio-9p, tag `context`) is mounted read-only on /context;
 * - the build disk, hot-plugged by the host, is waited for and its partition table read.
 */
import { cString, ioctlOn, lastError, libc, O_CLOEXEC, O_RDONLY, O_WRONLY } from "./libc.ts"

const CLOCK_REALTIME = 0
const RNDRESEEDCRNG = 0x5207n
const BLKRRPART = 0x125fn
const MS_RDONLY = 1n
/** The build context: mount tag, mount point, options (as guest/init used to mount it). */
const CONTEXT = {
  tag: "context",
  at: "/context",
  options: "trans=virtio,version=9p2000.L,msize=524288,cache=loose",
} as const
/** How long a hot-plugged disk may take to appear under TCG. */
const DISK_WAIT_MS = 10_000

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** `attach EPOCH_MS SEED_HEX DISK`: the problems, one line each (none when all went well). */
export const attach = async (args: ReadonlyArray<string>): Promise<Array<string>> => {
  const [epochMs, seed, disk] = args
  if (
    args.length !== 3 || !/^\d+$/.test(epochMs ?? "") || !/^([0-9a-f]{2})+$/.test(seed ?? "") ||
    disk === undefined
  ) {
    return ["usage: attach EPOCH_MS SEED_HEX DISK"]
  }
  return [
    setClock(Number(epochMs)),
    reseed(seed!),
    mountContext(),
    await waitForDisk(disk),
  ].filter((problem): problem is string => problem !== undefined)
}

const setClock = (epochMs: number): string | undefined => {
  const time = new BigInt64Array([
    BigInt(Math.floor(epochMs / 1000)),
    BigInt(epochMs % 1000) * 1_000_000n,
  ])
  return libc().clock_settime(CLOCK_REALTIME, new Uint8Array(time.buffer)) < 0
    ? `cannot set the clock: ${lastError()}`
    : undefined
}

const reseed = (hex: string): string | undefined => {
  const bytes = new Uint8Array(hex.length / 2)
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  const { open, write, close } = libc()
  const fd = open(cString("/dev/urandom"), O_WRONLY | O_CLOEXEC)
  if (fd < 0) return `cannot open /dev/urandom: ${lastError()}`
  try {
    if (Number(write(fd, bytes, BigInt(bytes.length))) !== bytes.length) {
      return `cannot seed the random number generator: ${lastError()}`
    }
  } finally {
    close(fd)
  }
  const problem = ioctlOn("/dev/urandom", O_RDONLY | O_CLOEXEC, RNDRESEEDCRNG)
  return problem === undefined ? undefined : `cannot reseed the random number generator: ${problem}`
}

/** The virtio-9p devices' mount tags. */
const mountTags = (): Array<string> => {
  const dir = "/sys/bus/virtio/drivers/9pnet_virtio"
  const tags: Array<string> = []
  try {
    for (const entry of Deno.readDirSync(dir)) {
      if (!entry.name.startsWith("virtio")) continue
      try {
        tags.push(Deno.readTextFileSync(`${dir}/${entry.name}/mount_tag`).replaceAll("\0", ""))
      } catch {
        // Not a 9p device after all.
      }
    }
  } catch {
    // No 9p driver: no context.
  }
  return tags
}

const mountContext = (): string | undefined => {
  if (!mountTags().includes(CONTEXT.tag)) return undefined
  const mounts = Deno.readTextFileSync("/proc/mounts").split("\n")
  if (mounts.some((line) => line.split(" ")[1] === CONTEXT.at)) return undefined
  Deno.mkdirSync(CONTEXT.at, { recursive: true })
  const code = libc().mount(
    cString(CONTEXT.tag),
    cString(CONTEXT.at),
    cString("9p"),
    MS_RDONLY,
    cString(CONTEXT.options),
  )
  return code < 0 ? `cannot mount the build context: ${lastError()}` : undefined
}

const waitForDisk = async (disk: string): Promise<string | undefined> => {
  const until = performance.now() + DISK_WAIT_MS
  for (;;) {
    try {
      if (Deno.statSync(disk).isBlockDevice) break
    } catch {
      // Not there yet.
    }
    if (performance.now() > until) return `the build disk ${disk} did not appear`
    await sleep(5)
  }
  // The kernel reads the partition table as the disk appears; read it again, whole, so that
  // every partition exists before the first command looks for one.
  const problem = ioctlOn(disk, O_RDONLY | O_CLOEXEC, BLKRRPART)
  return problem === undefined
    ? undefined
    : `cannot read the partition table of ${disk}: ${problem}`
}
