/** The programs of the initramfs: the tools from the packages, and busybox for every other applet. */
import type { Tree } from "./initramfs.ts"
import { fail, run } from "./process.ts"
import { resolveIn } from "./sysroot.ts"

/** Programs taken from the packages into /usr/bin (symlinks are kept as symlinks). */
const TOOLS = [
  // /bin/sh: busybox's shell runs its own applets before anything on PATH (Debian builds it
  // "standalone"), which would put busybox mount, cp and tar in front of the real ones.
  "/bin/dash",
  // util-linux, mount, fdisk
  "/sbin/sfdisk",
  "/sbin/blkid",
  "/bin/mount",
  "/bin/umount",
  "/usr/bin/unshare",
  "/usr/bin/nsenter",
  // INSPECT's setsid: busybox's would run busybox's unshare applet, not util-linux's.
  "/usr/bin/setsid",
  "/sbin/fsfreeze",
  "/bin/lsblk",
  "/bin/findmnt",
  "/sbin/wipefs",
  "/usr/bin/partx",
  "/sbin/losetup",
  "/sbin/blockdev",
  "/sbin/mkswap",
  "/sbin/swapon",
  "/sbin/swapoff",
  "/sbin/fstrim",
  // e2fsprogs
  "/sbin/mke2fs",
  "/sbin/mkfs.ext2",
  "/sbin/mkfs.ext3",
  "/sbin/mkfs.ext4",
  "/sbin/e2fsck",
  "/sbin/fsck.ext2",
  "/sbin/fsck.ext3",
  "/sbin/fsck.ext4",
  "/sbin/tune2fs",
  "/sbin/e2label",
  "/sbin/resize2fs",
  "/sbin/dumpe2fs",
  "/sbin/debugfs",
  // xfsprogs
  "/sbin/mkfs.xfs",
  "/sbin/xfs_repair",
  "/usr/sbin/xfs_admin",
  "/usr/sbin/xfs_db",
  "/usr/sbin/xfs_growfs",
  // dosfstools
  "/sbin/mkfs.fat",
  "/sbin/mkfs.vfat",
  "/sbin/mkfs.msdos",
  "/sbin/fsck.fat",
  "/sbin/fsck.vfat",
  "/sbin/fatlabel",
  // lvm2 (its pv*/vg*/lv* commands are added as links to lvm)
  "/sbin/lvm",
  "/sbin/dmsetup",
  // archives; GNU cp keeps xattrs where busybox cp cannot
  "/bin/tar",
  "/bin/gzip",
  "/usr/bin/xz",
  "/usr/bin/unxz",
  "/usr/bin/xzcat",
  "/bin/bzip2",
  "/usr/bin/zstd",
  "/bin/cp",
  "/bin/mv",
  // kmod
  "/bin/kmod",
  "/sbin/modprobe",
  "/sbin/insmod",
  "/sbin/rmmod",
  "/sbin/depmod",
  "/bin/lsmod",
  "/sbin/modinfo",
]

/** Take the tools into usr/bin, and busybox for every other applet; returns the ELF files taken. */
export const addTools = async (tree: Tree, sysroot: string): Promise<Array<string>> => {
  const elfFiles: Array<string> = []
  const taken = new Map<string, string>()
  const take = async (program: string) => {
    const name = program.split("/").pop()!
    const real = resolveIn(sysroot, program) ?? fail(`no ${program} in the pinned packages`)
    const realName = real.split("/").pop()!
    if (taken.has(name) && taken.get(name) !== real) fail(`two programs are named ${name}`)
    taken.set(name, real)
    if (realName !== name) {
      tree.symlink(`usr/bin/${name}`, realName)
      await take(real)
      return
    }
    if (tree.entries.has(`usr/bin/${name}`)) return
    const info = await Deno.stat(`${sysroot}${real}`)
    tree.file(`usr/bin/${name}`, await Deno.readFile(`${sysroot}${real}`), info.mode! & 0o7777)
    elfFiles.push(`${sysroot}${real}`)
  }
  for (const program of TOOLS) await take(program)
  for (const entry of Deno.readDirSync(`${sysroot}/sbin`)) {
    if (!entry.isSymlink) continue
    const target = Deno.readLinkSync(`${sysroot}/sbin/${entry.name}`)
    if (target === "lvm") await take(`/sbin/${entry.name}`)
  }
  tree.symlink("usr/bin/sh", "dash")
  await take("/bin/busybox")
  const applets = await run([`${sysroot}/bin/busybox`, "--list"])
  for (const applet of applets.split("\n").filter((line) => line !== "")) {
    if (applet === "init" || applet === "linuxrc") continue
    if (!tree.entries.has(`usr/bin/${applet}`)) tree.symlink(`usr/bin/${applet}`, "busybox")
  }
  return elfFiles
}
