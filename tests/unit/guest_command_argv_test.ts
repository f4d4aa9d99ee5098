/** Guest commands: the argv each operation hands the agent, and where image paths land. */
import assert from "node:assert/strict"
import {
  BUILD_ROOT,
  commandFor,
  inRoot,
  partitionDevice,
  quote,
  renderCommand,
  runArgv,
  script,
  sfdiskScript,
} from "../../src/domain/guest/commands.ts"
import { GuestOperation } from "../../src/domain/guest/operation.ts"
import type { DiskLayout } from "../../src/domain/plan.ts"

/** guest/scripts/ in this checkout: the files the initramfs ships at GUEST_SCRIPT_DIR. */
const SCRIPTS = new URL("../../guest/scripts/", import.meta.url).pathname

const MiB = 1024 * 1024

Deno.test("partitioning hands the table and the devices to wait for as arguments", () => {
  const layout: DiskLayout = {
    table: "gpt",
    sizeBytes: 64 * MiB,
    partitions: [{
      number: 1,
      startSector: 2048,
      sizeSectors: 1000,
      type: "linux",
      bootable: false,
    }],
  }
  const command = commandFor(GuestOperation.PartitionDisk({ layout }))
  assert.deepEqual(command.argv, [
    script("partition.sh"),
    "/dev/sda",
    sfdiskScript(layout),
    "/dev/sda1",
  ])
  assert.deepEqual(partitionDevice(12), "/dev/sda12")
})

Deno.test("mounts create each mount point and go under the build root in the given order", () => {
  const mounts = [{ partition: 2, path: "/" }, { partition: 1, path: "/boot/efi" }]
  assert.deepEqual(commandFor(GuestOperation.MountPartitions({ mounts })).argv, [
    script("mount-partitions.sh"),
    "/dev/sda2",
    BUILD_ROOT,
    "/dev/sda1",
    `${BUILD_ROOT}/boot/efi`,
  ])
})

Deno.test("the chroot gets the disk's links, dev, dev/pts, dev/shm, proc, sys, run, tmp and resolv.conf", async () => {
  // One guest command: the build root, the disk, then path/type/options/source for each mount.
  const command = commandFor(GuestOperation.PrepareChroot())
  assert.equal(command.argv[0], script("prepare-chroot.sh"))
  assert.equal(command.argv[1], BUILD_ROOT)
  assert.equal(command.argv[2], "/dev/sda")
  const quads = command.argv.slice(3)
  const paths = quads.filter((_, i) => i % 4 === 0)
  assert.deepEqual(paths, ["/dev", "/dev/pts", "/dev/shm", "/proc", "/sys", "/run", "/tmp"])
  assert.deepEqual(quads.filter((_, i) => i % 4 === 1), [
    "devtmpfs",
    "devpts",
    "tmpfs",
    "proc",
    "sysfs",
    "tmpfs",
    "tmpfs",
  ])
  assert.ok(
    renderCommand(command).includes(`${BUILD_ROOT} /dev/sda /dev devtmpfs mode=0755,nosuid udev`),
  )
  assert.match(await Deno.readTextFile(`${SCRIPTS}prepare-chroot.sh`), /resolv\.conf/)
})

Deno.test("RUN passes the command verbatim as one argument in a PID namespace", () => {
  const command = `echo "it's" $HOME > /etc/motd && ls | wc -l # not a comment to us`
  const argv = runArgv(command)
  assert.deepEqual(argv.slice(0, 3), ["unshare", "--fork", "--pid"])
  assert.deepEqual(argv.slice(-5), ["chroot", BUILD_ROOT, "/bin/sh", "-c", command])
  const rendered = renderCommand(commandFor(GuestOperation.Run({ command })))
  assert.ok(rendered.endsWith(quote(command)), rendered)
  assert.ok(rendered.startsWith("PATH=/usr/local/sbin:"), rendered)
})

Deno.test("inRoot puts image paths under the build root", () => {
  assert.equal(inRoot("/"), BUILD_ROOT)
  assert.equal(inRoot("/etc//motd"), `${BUILD_ROOT}/etc/motd`)
})
