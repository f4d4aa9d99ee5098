/**
 * BuildVmQemu on a real QEMU under TCG. What the VM wrote is read back on the host with
 * qemu-img, sfdisk and debugfs, never through transient's own code; and no QEMU process may
 * outlive its scope.
 */
import assert from "node:assert/strict"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as NodeContext from "@effect/platform-node/NodeContext"
import type { VmError } from "../../src/domain/errors/vm.ts"
import { GuestOperation } from "../../src/domain/guest/operation.ts"
import { makeBuildVmQemu } from "../../src/layers/qemu/build_vm_qemu.ts"
import type { GuestImages } from "../../src/layers/qemu/qemu_machine.ts"
import { TerminalDeno } from "../../src/layers/terminal_deno.ts"
import { type BootOptions, BuildVm } from "../../src/services/build_vm.ts"
import type { ContextEntry } from "../../src/services/build_context.ts"
import { runFailure, runTest } from "../support/effect.ts"
import { qemuProcessesWith, tool } from "../support/host.ts"
import { warningsReporter } from "../support/warnings_reporter.ts"

const MiB = 1024 * 1024
const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "")
const GUEST_DIR = Deno.env.get("TRANSIENT_GUEST_DIR") ?? `${REPO}/guest/dist`

const guestImages = async (): Promise<GuestImages> => {
  // An uncompressed kernel boots faster under TCG; older artifacts have the compressed one.
  const kernel = (await exists(`${GUEST_DIR}/vmlinux`))
    ? `${GUEST_DIR}/vmlinux`
    : `${GUEST_DIR}/vmlinuz`
  const images = { kernel, initrd: `${GUEST_DIR}/initramfs.img` }
  for (const path of Object.values(images)) {
    if (!(await exists(path))) throw new Error(`${path} is missing: run \`deno task guest\``)
  }
  const runtime = `${GUEST_DIR}/runtime.img`
  return (await exists(runtime)) ? { ...images, runtime } : images
}

const exists = (path: string) => Deno.stat(path).then(() => true, () => false)

const entry = (source: string, kind: ContextEntry["kind"]): ContextEntry => ({
  source,
  path: source,
  kind,
  size: 0,
  mode: 0,
})

/** A busybox root filesystem as a tar.gz: enough for /bin/sh in the chroot. */
const makeRootfs = async (context: string) => {
  const rootfs = await Deno.makeTempDir()
  try {
    for (const dir of ["bin", "etc", "dev", "proc", "sys", "run", "tmp"]) {
      await Deno.mkdir(`${rootfs}/${dir}`)
    }
    await Deno.copyFile("/usr/bin/busybox", `${rootfs}/bin/busybox`)
    await Deno.chmod(`${rootfs}/bin/busybox`, 0o755)
    for (const applet of ["sh", "echo", "cat", "ls", "ps"]) {
      await Deno.symlink("busybox", `${rootfs}/bin/${applet}`)
    }
    await Deno.writeTextFile(
      `${rootfs}/etc/fstab`,
      "# root first\n/dev/sda1 / ext4 defaults 0 1\nLABEL=e2e-data /data ext2 defaults 0 2\n" +
        "proc /proc proc defaults 0 0\n",
    )
    await tool(
      "tar",
      "-C",
      rootfs,
      "--numeric-owner",
      "--owner=0",
      "--group=0",
      "-czf",
      `${context}/rootfs.tar.gz`,
      ".",
    )
  } finally {
    await Deno.remove(rootfs, { recursive: true })
  }
}

const withWorkDir = async (body: (dir: string) => Promise<void>) => {
  const dir = await Deno.makeTempDir({ prefix: "transient-e2e-vm-" })
  try {
    await body(dir)
    assert.deepEqual(await qemuProcessesWith(dir), [], "a QEMU process outlived its scope")
  } finally {
    await Deno.remove(dir, { recursive: true })
  }
}

const bootOptions = (dir: string, overrides: Partial<BootOptions> = {}): BootOptions => ({
  disk: `${dir}/disk.qcow2`,
  context: `${dir}/context`,
  network: false,
  accel: "tcg",
  cpus: 2,
  memoryMiB: 512,
  bootTimeoutSeconds: 60,
  ...overrides,
})

Deno.test("a fresh disk is partitioned, formatted, filled and run in, as the host then reads it", async () => {
  await withWorkDir(async (dir) => {
    const warnings: Array<string> = []
    const layer = makeBuildVmQemu(Effect.promise(guestImages)).pipe(
      Layer.provide(
        Layer.mergeAll(
          warningsReporter((message) => void warnings.push(message)),
          TerminalDeno,
          NodeContext.layer,
        ),
      ),
    )
    await tool("qemu-img", "create", "-q", "-f", "qcow2", `${dir}/disk.qcow2`, "64M")
    await Deno.mkdir(`${dir}/context/conf`, { recursive: true })
    await makeRootfs(`${dir}/context`)
    await Deno.writeTextFile(`${dir}/context/tool.sh`, "#!/bin/sh\necho tool\n")
    await Deno.chmod(`${dir}/context/tool.sh`, 0o755)
    await Deno.writeTextFile(`${dir}/context/conf/app.conf`, "key=value\n")

    const output: Array<string> = []
    const [pid, status, failure] = await runTest(
      Effect.gen(function* () {
        const vm = yield* BuildVm
        return yield* Effect.scoped(Effect.gen(function* () {
          const session = yield* vm.boot(bootOptions(dir))
          const sectors = (64 * MiB) / 512
          yield* session.perform(GuestOperation.PartitionDisk({
            layout: {
              table: "gpt",
              sizeBytes: 64 * MiB,
              partitions: [
                { number: 1, startSector: 2048, sizeSectors: 98304, type: "linux", bootable: true },
                {
                  number: 2,
                  startSector: 100352,
                  sizeSectors: sectors - 100352 - 34,
                  type: "linux",
                  bootable: false,
                },
              ],
            },
          }))
          yield* session.perform(
            GuestOperation.Format({ partition: 1, fs: "ext4", options: ["-L", "e2e root"] }),
          )
          yield* session.perform(
            GuestOperation.Format({ partition: 2, fs: "ext2", options: ["-L", "e2e-data"] }),
          )
          yield* session.perform(GuestOperation.MountPartitions({
            mounts: [{ partition: 1, path: "/" }, { partition: 2, path: "/data" }],
          }))
          yield* session.perform(
            GuestOperation.Extract({ source: entry("rootfs.tar.gz", "file"), destination: "/" }),
          )
          yield* session.perform(GuestOperation.CopyIn({
            sources: [entry("tool.sh", "file")],
            destination: "/usr/local/bin/tool",
          }))
          yield* session.perform(
            GuestOperation.CopyIn({
              sources: [entry("conf", "directory")],
              destination: "/etc/app",
            }),
          )
          yield* session.perform(GuestOperation.PrepareChroot())
          const onOutput = (_stream: string, chunk: Uint8Array) =>
            Effect.sync(() => void output.push(new TextDecoder().decode(chunk)))
          const pid = yield* session.run({
            command:
              "echo hi > /hello && ln -s hello /hello.link && echo m > /data/marker && echo $$",
            onOutput,
          })
          const status = yield* session.run({ command: "exit 7", onOutput })
          const failure = yield* session.perform(GuestOperation.Format({
            partition: 1,
            fs: "ext4",
            options: ["-O", "no_such_feature"],
          }))
            .pipe(Effect.flip)
          yield* session.perform(GuestOperation.Sync())
          return [pid, status, failure] as const
        }))
      }).pipe(Effect.provide(layer)),
    )
    assert.equal(pid, 0, output.join(""))
    assert.equal(output.join("").trim(), "1", "RUN is PID 1 of its own namespace")
    assert.equal(status, 7)
    assert.equal((failure as VmError).operation, "format partition 1 as ext4")
    assert.match((failure as VmError).reason, /mkfs\.ext4 .* exited with status 1/)
    assert.deepEqual(warnings, [])

    // Read the disk back on the host.
    await tool("qemu-img", "convert", "-O", "raw", `${dir}/disk.qcow2`, `${dir}/disk.raw`)
    const table = JSON.parse(await tool("sfdisk", "--json", `${dir}/disk.raw`)).partitiontable
    assert.equal(table.label, "gpt")
    assert.equal(table.partitions.length, 2)
    assert.equal(table.partitions[0].start, 2048)
    assert.equal(table.partitions[0].type, "0FC63DAF-8483-4772-8E79-3D69D8477DE4")
    assert.equal(table.partitions[0].attrs, "LegacyBIOSBootable")
    await tool(
      "dd",
      `if=${dir}/disk.raw`,
      `of=${dir}/part.raw`,
      "bs=1M",
      "skip=1",
      "count=48",
      "status=none",
    )
    const part = `${dir}/part.raw`
    assert.equal((await tool("blkid", "-p", "-o", "value", "-s", "LABEL", part)).trim(), "e2e root")
    assert.equal((await tool("blkid", "-p", "-o", "value", "-s", "TYPE", part)).trim(), "ext4")
    const debugfs = (request: string) => tool("debugfs", "-R", request, part)
    assert.equal(await debugfs("cat /hello"), "hi\n")
    assert.match(await debugfs("stat /hello.link"), /Type: symlink[\s\S]*Fast link dest: "hello"/)
    assert.equal(await debugfs("cat /usr/local/bin/tool"), "#!/bin/sh\necho tool\n")
    assert.match(await debugfs("stat /usr/local/bin/tool"), /Mode:\s+0755[\s\S]*/)
    assert.match(await debugfs("stat /usr/local/bin/tool"), /User:\s+0\s+Group:\s+0/)
    assert.equal(await debugfs("cat /etc/app/app.conf"), "key=value\n")
    assert.match(await debugfs("stat /bin/busybox"), /Mode:\s+0755/)
    assert.match(await debugfs("stat /bin/sh"), /Type: symlink/)
    // The chroot's API filesystems were unmounted: their mount points are empty in the image.
    assert.equal((await debugfs("ls /proc")).includes("self"), false)
    // Unmounted cleanly: no journal recovery needed.
    assert.match(await tool("dumpe2fs", "-h", part), /Filesystem state:\s+clean/)

    // Boot again on the same disk, as FROM <image> does: the root is found by its /etc/fstab,
    // and /data mounted as that fstab says (by label).
    const seen: Array<string> = []
    const again = await runTest(
      Effect.flatMap(BuildVm, (vm) =>
        Effect.scoped(Effect.gen(function* () {
          const session = yield* vm.boot(bootOptions(dir))
          yield* session.perform(GuestOperation.DiscoverRoot())
          yield* session.perform(GuestOperation.PrepareChroot())
          return yield* session.run({
            command: "cat /hello /data/marker",
            onOutput: (_stream, chunk) =>
              Effect.sync(() => void seen.push(new TextDecoder().decode(chunk))),
          })
        }))).pipe(Effect.provide(layer)),
    )
    assert.equal(again, 0, seen.join(""))
    assert.equal(seen.join(""), "hi\nm\n")
  })
})

Deno.test("a guest that does not come up in time is a VmBootFailed with the console's last lines", async () => {
  await withWorkDir(async (dir) => {
    const layer = makeBuildVmQemu(Effect.promise(guestImages)).pipe(
      Layer.provide(Layer.mergeAll(warningsReporter(() => {}), TerminalDeno, NodeContext.layer)),
    )
    await tool("qemu-img", "create", "-q", "-f", "qcow2", `${dir}/disk.qcow2`, "16M")
    await Deno.mkdir(`${dir}/context`)
    const cause = await runFailure(
      Effect.flatMap(
        BuildVm,
        (vm) => Effect.scoped(vm.boot(bootOptions(dir, { bootTimeoutSeconds: 2 }))),
      ).pipe(
        Effect.provide(layer),
      ),
    )
    assert.equal(cause._tag, "Fail")
    const error = (cause as { error: VmError }).error
    assert.equal(error._tag, "VmBootFailed")
    assert.match(error.message, /did not come up within 2 s under TCG/)
    assert.ok(Array.isArray(error.log), "the console log comes with the error")
  })
})
