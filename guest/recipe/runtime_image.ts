/** The runtime disk: a read-only ext4 image of Deno and the agent, identical for identical inputs. */
import { parentOf } from "./files.ts"
import type { RuntimeFile } from "./runtime.ts"
import type { PinnedTool } from "./sysroot.ts"

/** Fixed identity and time of the runtime disk, so its bytes never depend on when it was made. */
const RUNTIME_UUID = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
const RUNTIME_HASH_SEED = "0b1d2f3e-5a69-4c7d-8e9f-a0b1c2d3e4f5"
const RUNTIME_LABEL = "transient-rt"
const FIXED_TIME = 1

/** A read-only ext4 image of `files`, identical for identical inputs. */
export const makeRuntimeImage = async (
  output: string,
  files: ReadonlyArray<RuntimeFile>,
  sysroot: string,
  tool: PinnedTool,
): Promise<void> => {
  const staging = await Deno.makeTempDir({ prefix: "transient-runtime-" })
  try {
    let bytes = 0
    const dirs = new Set<string>([""])
    for (const file of files) {
      await Deno.mkdir(parentOf(`${staging}/${file.path}`), { recursive: true })
      await Deno.copyFile(file.source, `${staging}/${file.path}`)
      await Deno.chmod(`${staging}/${file.path}`, file.mode)
      bytes += (await Deno.stat(file.source)).size
      const parts = file.path.split("/")
      for (let depth = 1; depth < parts.length; depth++) dirs.add(parts.slice(0, depth).join("/"))
    }
    const all = [...dirs, ...files.map((file) => file.path)].sort()
    for (const path of all) {
      await Deno.chmod(
        `${staging}/${path}`,
        path === "" || dirs.has(path) ? 0o755 : files.find((f) => f.path === path)!.mode,
      )
    }
    const sizeMiB = Math.ceil((bytes * 1.05) / 2 ** 20) + 8
    const env = {
      E2FSPROGS_FAKE_TIME: String(FIXED_TIME),
      MKE2FS_CONFIG: `${sysroot}/etc/mke2fs.conf`,
    }
    await Deno.remove(output).catch(() => {})
    await tool("/sbin/mke2fs", [
      "-q",
      "-F",
      "-t",
      "ext4",
      "-O",
      "^has_journal",
      "-m",
      "0",
      "-L",
      RUNTIME_LABEL,
      "-U",
      RUNTIME_UUID,
      "-E",
      `hash_seed=${RUNTIME_HASH_SEED},root_owner=0:0`,
      "-d",
      staging,
      output,
      `${sizeMiB}M`,
    ], { env })
    // mke2fs -d copies the staged files' access and change times; pin every time.
    const script = all.flatMap((path) =>
      ["atime", "ctime", "mtime", "crtime"].map((field) =>
        `sif "/${path}" ${field} ${FIXED_TIME}`
      )
    ).join("\n") + "\n"
    const scriptFile = `${staging}.debugfs`
    await Deno.writeTextFile(scriptFile, script)
    try {
      await tool("/sbin/debugfs", ["-w", "-f", scriptFile, output], { env })
    } finally {
      await Deno.remove(scriptFile)
    }
  } finally {
    await Deno.remove(staging, { recursive: true })
  }
}
