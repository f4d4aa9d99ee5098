/** /init and the files of /etc that init, LVM and mke2fs read in the helper VM. */
import type { Tree } from "./initramfs.ts"
import { GUEST_DIR } from "./layout.ts"

const text = (value: string) => new TextEncoder().encode(value)

export const addSystemFiles = async (tree: Tree, system: {
  readonly sysroot: string
  readonly kernelVersion: string
  /** The modules init loads at boot, in order (relative to /lib/modules/VERSION). */
  readonly loadOrder: ReadonlyArray<string>
  /** The agent's entry module in the helper VM. */
  readonly agent: string
}): Promise<void> => {
  tree.file("init", await Deno.readFile(`${GUEST_DIR}/init`), 0o755)
  tree.file("etc/transient/modules", text(system.loadOrder.join("\n") + "\n"))
  tree.file(
    "etc/transient/build.env",
    text(`KERNEL_VERSION=${system.kernelVersion}\nAGENT=${system.agent}\n`),
  )
  tree.file("etc/passwd", text("root:x:0:0:root:/root:/bin/sh\n"))
  tree.file("etc/group", text("root:x:0:\n"))
  tree.file("etc/mke2fs.conf", await Deno.readFile(`${system.sysroot}/etc/mke2fs.conf`))
  // No udev in the helper VM: LVM makes its own device nodes and waits for no one.
  tree.file(
    "etc/lvm/lvm.conf",
    text(
      "activation {\n  udev_sync = 0\n  udev_rules = 0\n}\n" +
        "devices {\n  obtain_device_list_from_udev = 0\n}\n",
    ),
  )
}
