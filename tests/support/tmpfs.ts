/**
 * Small filesystems for the tests of full disks: a tmpfs of a few MiB. Mounting needs root (CI
 * and this machine's tests run as root); elsewhere those tests skip and say why.
 */
import { runHost } from "./host_tool.ts"

/** Mount a tmpfs of `mib` MiB on a fresh directory; why not, where this process cannot. */
export const mountTmpfs = async (
  mib: number,
): Promise<{ readonly dir: string } | { readonly problem: string }> => {
  if (Deno.uid() !== 0) return { problem: "not root" }
  const dir = await Deno.makeTempDir({ prefix: "transient-tmpfs-" })
  const mounted = await runHost(["mount", "-t", "tmpfs", "-o", `size=${mib}m`, "tmpfs", dir])
  if (mounted.code === 0) return { dir }
  await Deno.remove(dir)
  return { problem: mounted.stderr.trim() || "mount failed" }
}

export const unmountTmpfs = async (dir: string): Promise<void> => {
  await runHost(["umount", dir])
  await Deno.remove(dir, { recursive: true }).catch(() => {})
}

/** Whether `what` (a test's subject) must skip for want of a tmpfs: the reason, warned once. */
export const tmpfsProblem = async (what: string): Promise<string | undefined> => {
  const probe = await mountTmpfs(1)
  if ("dir" in probe) {
    await unmountTmpfs(probe.dir)
    return undefined
  }
  console.warn(`Skipping ${what}: cannot mount a tmpfs (${probe.problem})`)
  return probe.problem
}
