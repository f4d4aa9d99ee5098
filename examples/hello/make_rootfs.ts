/**
 * Makes `rootfs.tar.gz`: a tiny root filesystem around the host's statically linked busybox
 * (Debian's `busybox-static`), so the hello example builds offline.
 *
 *   deno run -A examples/hello/make_rootfs.ts [OUTPUT]
 */

const BUSYBOX_CANDIDATES = ["/bin/busybox", "/usr/bin/busybox"]

const isStatic = async (path: string): Promise<boolean> => {
  const header = await Deno.readFile(path).catch(() => undefined)
  if (!header) return false
  // A static executable has no PT_INTERP program header: look for the loader path instead.
  return !new TextDecoder("latin1").decode(header.subarray(0, 4096)).includes("ld-linux")
}

/** The host's static busybox, or an error that says how to get one. */
export const findStaticBusybox = async (): Promise<string> => {
  for (const path of BUSYBOX_CANDIDATES) {
    if (await isStatic(path)) return path
  }
  throw new Error(
    "a statically linked busybox is needed: install it with `apt-get install busybox-static`",
  )
}

const FILES: Record<string, string> = {
  "etc/fstab": "/dev/sda2 / ext4 defaults 0 1\n",
  "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
  "etc/group": "root:x:0:\n",
  "etc/hostname": "hello\n",
  "etc/inittab": "::sysinit:/bin/mount -a\n::respawn:-/bin/sh\n::ctrlaltdel:/bin/reboot\n",
}

const DIRECTORIES = ["bin", "sbin", "etc", "dev", "proc", "sys", "run", "tmp", "root", "usr/bin"]

/** Write a busybox root filesystem as a gzip-compressed tar to `output`. */
export const makeBusyboxRootfs = async (output: string): Promise<void> => {
  const busybox = await findStaticBusybox()
  const root = await Deno.makeTempDir({ prefix: "transient-rootfs-" })
  try {
    // The archive's `./` becomes the image's `/`: a temporary directory is 0700.
    await Deno.chmod(root, 0o755)
    for (const dir of DIRECTORIES) await Deno.mkdir(`${root}/${dir}`, { recursive: true })
    await Deno.chmod(`${root}/tmp`, 0o1777)
    await Deno.copyFile(busybox, `${root}/bin/busybox`)
    await Deno.chmod(`${root}/bin/busybox`, 0o755)
    await Deno.symlink("busybox", `${root}/bin/sh`)
    await Deno.symlink("/bin/busybox", `${root}/sbin/init`)
    for (const [path, content] of Object.entries(FILES)) {
      await Deno.writeTextFile(`${root}/${path}`, content)
    }
    const tar = await new Deno.Command("tar", {
      args: [
        "--create",
        "--gzip",
        "--file",
        output,
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "--sort=name",
        "--directory",
        root,
        ".",
      ],
      stderr: "piped",
    }).output()
    if (!tar.success) throw new Error(`tar failed: ${new TextDecoder().decode(tar.stderr)}`)
  } finally {
    await Deno.remove(root, { recursive: true })
  }
}

if (import.meta.main) {
  const output = Deno.args[0] ?? new URL("./rootfs.tar.gz", import.meta.url).pathname
  try {
    await makeBusyboxRootfs(output)
    console.log(`Wrote ${output}`)
  } catch (error) {
    console.error(`error: ${error instanceof Error ? error.message : error}`)
    Deno.exit(1)
  }
}
