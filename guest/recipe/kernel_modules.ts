/**
 * The kernel modules of the initramfs: those init loads at boot, those the kernel loads on first
 * use, and a depmod index made for just them.
 */
import { exists, parentOf, walkFiles } from "./files.ts"
import type { Tree } from "./initramfs.ts"
import { selectModules } from "./modules.ts"
import type { PinnedTool } from "./sysroot.ts"

/**
 * Kernel modules loaded by init before the agent starts (with their dependencies; a built-in
 * one is skipped): the virtio devices (the build's disk on virtio-scsi, so that it is /dev/sda
 * as on the original transient and on most machines), and ext4 for the runtime disk.
 */
const BOOT_MODULES = [
  "virtio_pci",
  "virtio_blk",
  "virtio_scsi",
  // Before sd_mod: its T10 protection-information checksums look these up through the crypto
  // API at load, and when they are missing the kernel runs modprobe six times (for each name,
  // its "-all" variant and cryptomgr): under TCG init loaded its modules in 1.67 s, now 1.30 s.
  "crc64_rocksoft_generic",
  "crct10dif_generic",
  "sd_mod",
  "virtio_console",
  "virtio_net",
  "virtio_rng",
  "9pnet_virtio",
  "9p",
  "crc32c_generic",
  "ext4",
  "af_packet",
]

/**
 * Modules shipped but loaded only when used: the kernel asks modprobe for them on the first
 * mount of such a filesystem or the first use of device-mapper or loop devices.
 */
const ON_DEMAND_MODULES = [
  "xfs",
  "vfat",
  "nls_cp437",
  "nls_ascii",
  "nls_iso8859_1",
  "nls_utf8",
  "dm_mod",
  "dm_snapshot",
  "dm_thin_pool",
  "dm_mirror",
  "loop",
  "crc32c_intel",
]

/** Add the selected modules with a depmod index made for just them; returns the load order. */
export const addModules = async (
  tree: Tree,
  kernelRoot: string,
  kernelVersion: string,
  tool: PinnedTool,
): Promise<ReadonlyArray<string>> => {
  const modulesDir = `${kernelRoot}/lib/modules/${kernelVersion}`
  if (!(await exists(`${modulesDir}/modules.dep`))) {
    await tool("/sbin/depmod", ["-b", kernelRoot, kernelVersion])
  }
  const modulesDep = await Deno.readTextFile(`${modulesDir}/modules.dep`)
  const modulesBuiltin = await Deno.readTextFile(`${modulesDir}/modules.builtin`)
  const boot = selectModules(BOOT_MODULES, modulesDep, modulesBuiltin)
  const all = selectModules([...BOOT_MODULES, ...ON_DEMAND_MODULES], modulesDep, modulesBuiltin)
  const staging = await Deno.makeTempDir({ prefix: "transient-modules-" })
  try {
    const staged = `${staging}/lib/modules/${kernelVersion}`
    for (const path of [...all.loadOrder, "modules.builtin", "modules.builtin.modinfo"]) {
      await Deno.mkdir(parentOf(`${staged}/${path}`), { recursive: true })
      await Deno.copyFile(`${modulesDir}/${path}`, `${staged}/${path}`)
    }
    await Deno.writeTextFile(`${staged}/modules.order`, all.loadOrder.join("\n") + "\n")
    await tool("/sbin/depmod", ["-b", staging, kernelVersion])
    for await (const path of walkFiles(staged)) {
      tree.file(
        `usr/lib/modules/${kernelVersion}/${path}`,
        await Deno.readFile(`${staged}/${path}`),
      )
    }
  } finally {
    await Deno.remove(staging, { recursive: true })
  }
  return boot.loadOrder
}
