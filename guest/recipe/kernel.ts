/** The kernel the helper VM boots: uncompressed from the pinned bzImage, checked for PVH. */
import { fail } from "./process.ts"
import type { PinnedTool } from "./sysroot.ts"

/**
 * The uncompressed kernel, from the xz payload of the bzImage. QEMU boots it directly through
 * its PVH entry point, which spares the kernel's self-decompression (seconds under TCG).
 */
export const extractVmlinux = async (
  vmlinuz: Uint8Array,
  tool: PinnedTool,
): Promise<Uint8Array> => {
  const magic = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]
  let start = -1
  for (let at = vmlinuz.indexOf(magic[0]!); at >= 0; at = vmlinuz.indexOf(magic[0]!, at + 1)) {
    if (magic.every((byte, index) => vmlinuz[at + index] === byte)) {
      start = at
      break
    }
  }
  if (start < 0) fail("the kernel image holds no xz payload")
  const vmlinux = await tool("/usr/bin/xz", ["-dc", "--single-stream"], {
    stdin: vmlinuz.subarray(start),
  })
  if (!hasPvhEntry(vmlinux)) fail("the kernel has no PVH entry point (CONFIG_PVH)")
  return vmlinux
}

/** Whether an ELF kernel carries the Xen PHYS32_ENTRY note that QEMU's PVH boot needs. */
export const hasPvhEntry = (elf: Uint8Array): boolean => {
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength)
  const phoff = Number(view.getBigUint64(0x20, true))
  const phentsize = view.getUint16(0x36, true)
  for (let index = 0; index < view.getUint16(0x38, true); index++) {
    const header = phoff + index * phentsize
    if (view.getUint32(header, true) !== 4) continue // PT_NOTE
    const offset = Number(view.getBigUint64(header + 8, true))
    const end = offset + Number(view.getBigUint64(header + 32, true))
    for (let at = offset; at + 12 <= end;) {
      const nameSize = view.getUint32(at, true)
      const descSize = view.getUint32(at + 4, true)
      const name = new TextDecoder().decode(elf.subarray(at + 12, at + 12 + nameSize - 1))
      if (name === "Xen" && view.getUint32(at + 8, true) === 18) return true
      at += 12 + Math.ceil(nameSize / 4) * 4 + Math.ceil(descSize / 4) * 4
    }
  }
  return false
}
