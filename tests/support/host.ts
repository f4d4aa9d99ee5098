/**
 * Reading images back on the host, independently of transient's own code: qemu-img, sfdisk,
 * debugfs and xfs_db, plus a look at the process table for stray QEMU processes.
 */
import { tool } from "./host_tool.ts"

export { tool }

/** PIDs of the QEMU processes whose command line mentions `needle`. */
export const qemuProcessesWith = async (needle: string): Promise<ReadonlyArray<string>> => {
  const found: Array<string> = []
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue
    const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`).catch(() => "")
    if (cmdline.startsWith("qemu-system") && cmdline.includes(needle)) found.push(entry.name)
  }
  return found
}

export interface DumpedPartition {
  readonly node: string
  readonly start: number
  readonly size: number
  readonly type: string
  readonly attrs?: string
  readonly bootable: boolean
}

/** A raw copy of a qcow2 and its partition table as `sfdisk --json` reads it. */
export const rawDisk = async (qcow2: string, raw: string) => {
  await tool("qemu-img", "convert", "-O", "raw", qcow2, raw)
  const table = JSON.parse(await tool("sfdisk", "--json", raw)).partitiontable as {
    label: string
    partitions: Array<
      {
        node: string
        start: number
        size: number
        type: string
        attrs?: string
        bootable?: boolean
      }
    >
  }
  return {
    label: table.label,
    partitions: table.partitions.map((p): DumpedPartition => ({
      node: p.node,
      start: p.start,
      size: p.size,
      type: p.type,
      ...(p.attrs ? { attrs: p.attrs } : {}),
      bootable: p.bootable === true,
    })),
  }
}

/** Copy one partition out of a raw disk into its own file (debugfs and xfs_db read files). */
export const extractPartition = (raw: string, partition: DumpedPartition, out: string) =>
  tool(
    "dd",
    `if=${raw}`,
    `of=${out}`,
    "bs=512",
    `skip=${partition.start}`,
    `count=${partition.size}`,
    "status=none",
  )

/** `debugfs -R "stat PATH"` on an ext2/3/4 filesystem image: its type, mode and size. */
export const extStat = async (fsImage: string, path: string) => {
  const out = await tool("debugfs", "-R", `stat ${path}`, fsImage)
  const type = /Type: (\w+)/.exec(out)?.[1]
  const mode = /Mode:\s+(\d+)/.exec(out)?.[1]
  return { type, mode: mode === undefined ? undefined : parseInt(mode, 8), raw: out }
}

/** `debugfs -R "cat PATH"`: a file's content. */
export const extCat = (fsImage: string, path: string) =>
  tool("debugfs", "-R", `cat ${path}`, fsImage)

export const sha256File = async (path: string): Promise<string> =>
  (await tool("sha256sum", path)).split(" ")[0] ?? ""
