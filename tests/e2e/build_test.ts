/**
 * Real builds: `transient build` under TCG, as a user runs it. The images are read back on the
 * host with qemu-img, sfdisk, debugfs and xfs_db, never through transient's own code.
 */
import assert from "node:assert/strict"
import { MAIN, offlineBuildArgs, transient } from "../support/run_transient.ts"
import { writeScratchContext } from "../support/scratch_context.ts"
import {
  extCat,
  extractPartition,
  extStat,
  qemuProcessesWith,
  rawDisk,
  sha256File,
  tool,
} from "../support/host.ts"
import { once } from "../support/once.ts"

const GPT_LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
const GPT_BIOS_BOOT = "21686148-6449-6E6F-744E-656564454649"

const work = await Deno.makeTempDir({ prefix: "transient-e2e-build-" })
const store = `${work}/store`
const env = { TRANSIENT_IMAGE_BACKEND: store, TRANSIENT_CACHE_DIR: `${store}.cache` }
const build = (dir: string, ...args: Array<string>) =>
  transient(offlineBuildArgs(dir, ...args), { env })

const context = async (name: string, imagefile: string) => {
  const dir = `${work}/${name}`
  await Deno.mkdir(dir, { recursive: true })
  await Deno.writeTextFile(`${dir}/Imagefile`, imagefile)
  return dir
}

const scratch = `${work}/scratch`
await writeScratchContext(scratch)

/** The scratch image, `${scratch}/scratch.qcow2`: built by the first test that needs it. */
const scratchImage = once(() => build(scratch, "--local", "--name", "scratch"))

Deno.test("FROM scratch on GPT: partition types, files, modes and a symlink", async () => {
  const result = await scratchImage()
  assert.equal(result.code, 0, result.stderr + result.stdout)
  assert.match(result.stdout, /^Step 8\/8 : RUN echo hello > \/etc\/motd && ln -s motd/m)
  assert.match(result.stdout, /Successfully built scratch/)

  const disk = await rawDisk(`${scratch}/scratch.qcow2`, `${work}/scratch.raw`)
  assert.equal(disk.label, "gpt")
  const [grub, root] = disk.partitions
  assert.equal(grub?.type, GPT_BIOS_BOOT)
  assert.equal(grub?.start, 2048)
  assert.equal(grub?.size, 8 * 2048)
  assert.equal(root?.type, GPT_LINUX)
  assert.ok(root)
  await extractPartition(`${work}/scratch.raw`, root, `${work}/scratch-root.ext4`)
  const fs = `${work}/scratch-root.ext4`
  assert.match(await tool("blkid", "-o", "value", "-s", "TYPE", fs), /^ext4$/m)

  assert.equal(await extCat(fs, "/etc/motd"), "hello\n")
  const link = await extStat(fs, "/etc/motd.link")
  assert.equal(link.type, "symlink")
  assert.match(link.raw, /Fast link dest: "motd"/)
  const toolStat = await extStat(fs, "/usr/local/bin/tool")
  assert.equal(toolStat.type, "regular")
  assert.equal((toolStat.mode ?? 0) & 0o7777, 0o755)
  assert.equal(await extCat(fs, "/etc/app/app.conf"), "key=value\n")
  assert.equal(await extCat(fs, "/etc/app/sub/deep.txt"), "deep\n")
  assert.equal((await extStat(fs, "/bin/busybox")).type, "regular", "the rootfs was extracted")
})

// 512 MB: mkfs.xfs (xfsprogs 6) refuses filesystems smaller than 300 MiB.
Deno.test("FROM scratch on MBR with xfs: the boot flag and the mkfs OPTIONS hold", async () => {
  const dir = await context(
    "xfs",
    'FROM scratch\nDISK 512 MB MBR\nPARTITION 1 FORMAT xfs OPTIONS "-m crc=0" MOUNT / FLAGS boot\n',
  )
  const result = await build(dir, "--local", "--name", "xfs")
  assert.equal(result.code, 0, result.stderr + result.stdout)
  const disk = await rawDisk(`${dir}/xfs.qcow2`, `${work}/xfs.raw`)
  assert.equal(disk.label, "dos")
  const [root] = disk.partitions
  assert.ok(root)
  assert.equal(root.bootable, true)
  assert.equal(root.type, "83")
  await extractPartition(`${work}/xfs.raw`, root, `${work}/xfs-root.img`)
  const version = await tool("xfs_db", "-r", "-c", "version", `${work}/xfs-root.img`)
  // `-m crc=0` makes a V4 filesystem: no CRC feature.
  assert.match(version, /= V4,/)
  assert.doesNotMatch(version, /CRC/)
})

Deno.test("FROM an image in the store: the base gains a file and stays byte-for-byte unchanged", async () => {
  const scratchBuild = await scratchImage()
  assert.equal(scratchBuild.code, 0, `the base image did not build: ${scratchBuild.stderr}`)
  const pulled = await transient(
    ["image", "pull", `base,file=${scratch}/scratch.qcow2`, "--progress", "plain"],
    { env },
  )
  assert.equal(pulled.code, 0, pulled.stderr)
  const listed = JSON.parse((await transient(["image", "ls", "--json"], { env })).stdout) as Array<
    { name: string; path: string }
  >
  const base = listed.find((image) => image.name === "base")
  assert.ok(base, "the base was stored")
  const before = await sha256File(base.path)

  const dir = await context("derived", "FROM base\nRUN touch /foobar\n")
  const result = await build(dir, "--name", "derived")
  assert.equal(result.code, 0, result.stderr + result.stdout)
  assert.equal(await sha256File(base.path), before, "the base image is unchanged")

  const images = JSON.parse((await transient(["image", "ls", "--json"], { env })).stdout) as Array<
    { name: string; path: string }
  >
  const derived = images.find((image) => image.name === "derived")
  assert.ok(derived)
  const disk = await rawDisk(derived.path, `${work}/derived.raw`)
  const root = disk.partitions[1]
  assert.ok(root)
  await extractPartition(`${work}/derived.raw`, root, `${work}/derived-root.ext4`)
  assert.equal((await extStat(`${work}/derived-root.ext4`, "/foobar")).type, "regular")
  assert.equal(await extCat(`${work}/derived-root.ext4`, "/etc/motd"), "hello\n")
})

Deno.test("the build's disk is /dev/sda with udev's /dev/disk links; FROM it, an fstab naming /dev/vda2 mounts /dev/sda2", async () => {
  const dir = await context(
    "devices",
    [
      "FROM scratch",
      "DISK 128 MB GPT",
      'PARTITION 1 SIZE 64 MB FORMAT ext4 OPTIONS "-L devroot" MOUNT /',
      "PARTITION 2 FORMAT ext4 MOUNT /data",
      "ADD rootfs.tar.gz /",
      "RUN ls /dev/sda /dev/sda1 /dev/disk/by-uuid/* && readlink /dev/disk/by-label/devroot",
      // The fstab of an image made on virtio disks, whose data partition is named by device.
      'RUN echo data > /data/marker && printf "LABEL=devroot / ext4 defaults 0 1\\n/dev/vda2 /data ext4 defaults 0 2\\n" > /etc/fstab',
    ].join("\n") + "\n",
  )
  await Deno.copyFile(`${scratch}/rootfs.tar.gz`, `${dir}/rootfs.tar.gz`)
  const first = await build(dir, "--local", "--name", "devices")
  assert.equal(first.code, 0, first.stderr + first.stdout)
  assert.match(first.stdout, /^\/dev\/sda1$/m)
  assert.match(first.stdout, /^\.\.\/\.\.\/sda1$/m, "by-label names the partition as udev does")

  const pulled = await transient(
    ["image", "pull", `devices,file=${dir}/devices.qcow2`, "--progress", "plain"],
    { env },
  )
  assert.equal(pulled.code, 0, pulled.stderr)
  const derived = await context("devices-derived", "FROM devices\nRUN cat /data/marker\n")
  const second = await build(derived, "--local", "--name", "derived")
  assert.equal(second.code, 0, second.stderr + second.stdout)
  assert.match(second.stdout, /^data$/m, "the data partition was mounted from the fstab")
})

Deno.test("the original transient's own Imagefile.simple builds as it is", async () => {
  const dir = `${work}/simple`
  await Deno.mkdir(dir, { recursive: true })
  await Deno.copyFile(new URL("./fixtures/Imagefile.simple", import.meta.url), `${dir}/Imagefile`)
  // An alpine-3.13.tar.xz-like root filesystem: the busybox one, xz-compressed.
  const xz = new Deno.Command("xz", { args: ["-c"], stdin: "piped", stdout: "piped" }).spawn()
  const written = Deno.open(`${dir}/alpine-3.13.tar.xz`, { write: true, create: true })
    .then((file) => xz.stdout.pipeTo(file.writable))
  const rootfs = await Deno.open(`${scratch}/rootfs.tar.gz`)
  await rootfs.readable.pipeThrough(new DecompressionStream("gzip")).pipeTo(xz.stdin)
  assert.ok((await xz.status).success)
  await written

  const result = await build(dir, "--local", "--name", "simple")
  assert.equal(result.code, 0, result.stderr + result.stdout)
  const disk = await rawDisk(`${dir}/simple.qcow2`, `${work}/simple.raw`)
  assert.equal(disk.partitions[0]?.type, GPT_BIOS_BOOT)
  assert.equal(disk.partitions[0]?.size, (300 * 1024 * 1024) / 512)
  await extractPartition(`${work}/simple.raw`, disk.partitions[1]!, `${work}/simple.ext2`)
  assert.equal((await extStat(`${work}/simple.ext2`, "/bin/busybox")).type, "regular")
  assert.match(await tool("blkid", "-o", "value", "-s", "TYPE", `${work}/simple.ext2`), /^ext2$/m)
})

Deno.test("a RUN that fails: exit 1, the step and status on stderr, nothing left behind", async () => {
  const dir = await context(
    "failing",
    "FROM scratch\nDISK 64 MB MBR\nPARTITION 1 FORMAT ext4 MOUNT /\nADD rootfs.tar.gz /\nRUN echo about to fail; exit 3\n",
  )
  await Deno.copyFile(`${scratch}/rootfs.tar.gz`, `${dir}/rootfs.tar.gz`)
  const published = () =>
    [...Deno.readDirSync(store)].map((e) => e.name).filter((n) => !n.startsWith(".")).sort()
  // Whatever other tests of this file published before, the failed build adds nothing to it.
  await Deno.mkdir(store, { recursive: true })
  const before = published()
  const result = await build(dir, "--name", "failing")
  assert.equal(result.code, 1)
  assert.match(
    result.stderr,
    /Step 5\/5 : RUN echo about to fail; exit 3 failed: the command exited with status 3/,
  )
  assert.match(result.stdout, /about to fail/)
  const working = [...Deno.readDirSync(`${store}/.working`)].filter((e) =>
    !e.name.endsWith(".lock")
  )
  assert.deepEqual(working, [], "no working file is left")
  assert.deepEqual(published(), before)
  assert.deepEqual(await qemuProcessesWith("transient-vm-"), [], "no QEMU process is left")
})

Deno.test("the network: on by default through QEMU's user mode, off with --no-network", async () => {
  // The host's loopback is 10.0.2.2 from inside the helper VM.
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("served by the host\n"),
  )
  try {
    const url = `http://10.0.2.2:${server.addr.port}/file`
    const dir = await context(
      "network",
      "FROM scratch\nDISK 64 MB GPT\nPARTITION 1 FORMAT ext4 MOUNT /\nADD rootfs.tar.gz /\n" +
        `RUN busybox wget -q -O /fetched ${url} && cat /etc/resolv.conf\n`,
    )
    await Deno.copyFile(`${scratch}/rootfs.tar.gz`, `${dir}/rootfs.tar.gz`)
    const online = await transient(
      ["build", "--accel", "tcg", "--progress", "plain", "--local", "--name", "online", dir],
      { env },
    )
    assert.equal(online.code, 0, online.stderr + online.stdout)
    // The guest's resolver, bound over the image's for the step (QEMU's DNS is 10.0.2.3).
    assert.match(online.stdout, /^nameserver 10\.0\.2\.3$/m)
    const disk = await rawDisk(`${dir}/online.qcow2`, `${work}/online.raw`)
    await extractPartition(`${work}/online.raw`, disk.partitions[0]!, `${work}/online.ext4`)
    assert.equal(await extCat(`${work}/online.ext4`, "/fetched"), "served by the host\n")
    // The resolv.conf made for the step is gone again: the image had none.
    assert.equal((await extStat(`${work}/online.ext4`, "/etc/resolv.conf")).type, undefined)

    // --no-cache: the network is not part of the step cache's keys.
    const offline = await build(dir, "--no-cache", "--local", "--name", "offline")
    assert.equal(offline.code, 1, offline.stderr + offline.stdout)
    assert.match(offline.stderr, /Step 5\/5 : RUN busybox wget .* failed: the command exited/)
  } finally {
    await server.shutdown()
  }
})

Deno.test("--accel auto builds under KVM, or on TCG after a warning when KVM does not come up", async () => {
  const dir = await context(
    "auto",
    "FROM scratch\nDISK 64 MB GPT\nPARTITION 1 FORMAT ext4 MOUNT /\nADD rootfs.tar.gz /\nRUN echo auto-ok\n",
  )
  await Deno.copyFile(`${scratch}/rootfs.tar.gz`, `${dir}/rootfs.tar.gz`)
  const result = await transient(
    ["build", "--accel", "auto", "--no-network", "--local", "--name", "auto", dir],
    { env },
  )
  assert.equal(result.code, 0, result.stderr + result.stdout)
  assert.match(result.stdout, /^auto-ok$/m)
  // Where KVM hangs (as on some nested hosts), the one warning says why TCG took over.
  const warnings = result.stderr.split("\n").filter((line) => line.startsWith("warning:"))
  for (const warning of warnings) {
    assert.match(warning, /failed under KVM \(.+\); retrying with TCG/)
  }
  assert.deepEqual(await qemuProcessesWith("transient-vm-"), [], "no QEMU process is left")
})

/** A word for the `sh -c` of script(1): the test's own paths, single-quoted. */
const shellWord = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`

Deno.test("INSPECT: a shell in the image on the user's terminal, and the build goes on after it", async () => {
  const dir = await context(
    "inspect",
    "FROM scratch\nDISK 64 MB GPT\nPARTITION 1 FORMAT ext4 MOUNT /\nADD rootfs.tar.gz /\nINSPECT\n" +
      "RUN test -f /inspected && echo after-inspect\n",
  )
  await Deno.copyFile(`${scratch}/rootfs.tar.gz`, `${dir}/rootfs.tar.gz`)
  // script(1) gives the build a pseudo-terminal, as a user's terminal would be.
  const argv = [Deno.execPath(), "run", "-A", MAIN, "build", "--accel", "tcg", "--no-network"]
  argv.push("--progress", "plain", "--local", "--name", "inspected", dir)
  const child = new Deno.Command("script", {
    args: ["-q", "-e", "-c", argv.map(shellWord).join(" "), "/dev/null"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { ...env, NO_COLOR: "1" },
  }).spawn()
  const killer = setTimeout(() => child.kill("SIGKILL"), 180_000)
  const input = child.stdin.getWriter()
  let output = ""
  let typed = false
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    output += chunk
    if (!typed && output.includes("(transient) / # ")) {
      typed = true
      await input.write(new TextEncoder().encode("touch /inspected; echo in-$((6*7)); exit\r"))
    }
  }
  const status = await child.status
  clearTimeout(killer)
  await input.close().catch(() => {})
  await child.stderr.cancel()
  assert.ok(typed, `no shell prompt:\n${output}`)
  assert.equal(status.code, 0, output)
  // The command ran in the image's shell, and the step after INSPECT still wrote its output.
  assert.match(output, /^in-42\r?$/m)
  assert.match(output, /^after-inspect\r?$/m)
  assert.match(output, /Successfully built inspected/)
  const disk = await rawDisk(`${dir}/inspected.qcow2`, `${work}/inspected.raw`)
  await extractPartition(`${work}/inspected.raw`, disk.partitions[0]!, `${work}/inspected.ext4`)
  assert.equal((await extStat(`${work}/inspected.ext4`, "/inspected")).type, "regular")
})

globalThis.addEventListener("unload", () => {
  Deno.removeSync(work, { recursive: true })
})
