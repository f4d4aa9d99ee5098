/**
 * Whole builds against the memory layers: the simulated disk and the ordered operations.
 */
import assert from "node:assert/strict"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { build } from "../../src/app/build.ts"
import { exitCodeOf } from "../../src/cli/exit.ts"
import type { SimDisk } from "../../src/layers/memory/world.ts"
import { MemoryWorld } from "../../src/layers/memory/world.ts"
import { newTree, put } from "../../src/layers/memory/sim_fs.ts"
import { defaultOptions, type Harness, harness, makeTar, planOf, runBuild } from "./harness.ts"

const MiB = 1024 * 1024
const text = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes)

const published = (h: Harness, name: string): SimDisk => {
  const path = h.world.images.get(name)
  assert.ok(path, `image ${name} was published`)
  const disk = h.world.disks.get(path)
  assert.ok(disk)
  return disk
}

const fileIn = (disk: SimDisk, partition: number, path: string) => {
  const node = disk.partitions.find((p) => p.layout.number === partition)?.filesystem?.tree.get(
    path,
  )
  return node
}

const failureOf = <A>(exit: Exit.Exit<A, unknown>) => {
  assert.ok(Exit.isFailure(exit), "the build failed")
  const failure = Cause.failureOption(exit.cause)
  assert.ok(Option.isSome(failure), `a typed failure, got ${Cause.pretty(exit.cause)}`)
  return failure.value as { _tag: string; message: string } & Record<string, unknown>
}

/** No working image, no open VM, nothing new in the store. */
const assertClean = (h: Harness, imagesBefore: ReadonlyArray<string>) => {
  assert.equal(h.world.openSessions, 0, "the VM session was closed")
  assert.deepEqual([...h.world.disks.keys()].filter((p) => p.includes("/.working/")), [])
  assert.deepEqual([...h.world.images.keys()].sort(), [...imagesBefore].sort())
  assert.ok(h.world.ops().includes("discard"), "the working image was discarded")
  assert.ok(!h.world.ops().includes("publish"))
}

Deno.test("the format reference's scratch example: MBR, xfs with options, boot flag", async () => {
  const h = harness()
  const exit = await runBuild(
    h,
    'FROM scratch\nDISK 20 GB MBR\nPARTITION 1 FORMAT xfs OPTIONS "-m crc=0" MOUNT / FLAGS boot\n',
    defaultOptions("reference"),
  )
  assert.ok(Exit.isSuccess(exit), Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "")
  const disk = published(h, "reference")
  assert.equal(disk.sizeBytes, 20 * 1024 * MiB)
  assert.equal(disk.table, "mbr")
  assert.equal(disk.partitions.length, 1)
  const [root] = disk.partitions
  assert.deepEqual(root?.layout, {
    number: 1,
    startSector: 2048,
    sizeSectors: (20 * 1024 * MiB) / 512 - 2048,
    type: "linux",
    bootable: true,
  })
  assert.equal(root?.filesystem?.fs, "xfs")
  assert.deepEqual(root?.filesystem?.options, ["-m", "crc=0"])
  assert.deepEqual(h.world.ops(), [
    "create-disk",
    "boot",
    "partition",
    "format",
    "mount",
    "sync",
    "shutdown",
    // The chain of step layers flattened into the published file.
    "convert",
    "publish",
  ])
  assert.deepEqual(h.report.stepLines(), [
    "Step 1/3 : FROM scratch",
    "Step 2/3 : DISK 20 GB MBR",
    'Step 3/3 : PARTITION 1 FORMAT xfs OPTIONS "-m crc=0" MOUNT / FLAGS boot',
  ])
})

Deno.test("Alpine on GPT: a 300 MB bios_grub partition, an ext2 root, ADD of a rootfs", async () => {
  const rootfs = await makeTar({ "etc/alpine-release": "3.13.0\n", "bin/busybox": "#!busybox" })
  const h = harness({ "alpine-3.13.tar": rootfs })
  const exit = await runBuild(
    h,
    [
      "FROM scratch",
      "DISK 2gb GPT",
      "PARTITION 1 SIZE 300MB FLAGS bios_grub",
      "PARTITION 2 FORMAT ext2 MOUNT /",
      "ADD alpine-3.13.tar /",
    ].join("\n"),
    defaultOptions("alpine-gpt"),
  )
  assert.ok(Exit.isSuccess(exit), Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "")
  const disk = published(h, "alpine-gpt")
  assert.equal(disk.table, "gpt")
  const [grub, root] = disk.partitions
  assert.equal(grub?.layout.type, "bios_grub")
  assert.equal(grub?.layout.sizeSectors, (300 * MiB) / 512)
  assert.equal(grub?.filesystem, undefined)
  assert.equal(root?.layout.type, "linux")
  assert.equal(root?.layout.startSector, 2048 + (300 * MiB) / 512)
  // The root runs to the last usable sector, before the 33 sectors of the backup GPT.
  assert.equal(
    (root?.layout.startSector ?? 0) + (root?.layout.sizeSectors ?? 0),
    (2 * 1024 * MiB) / 512 - 33,
  )
  assert.equal(root?.filesystem?.fs, "ext2")
  assert.equal(
    text((fileIn(disk, 2, "/etc/alpine-release") as { content: Uint8Array })?.content),
    "3.13.0\n",
  )
})

Deno.test("Alpine on MBR: ext4 options, a gzip rootfs, many RUNs in one chroot", async () => {
  const rootfs = await makeTar({ "etc/os-release": "ID=alpine\n" }, { gzip: true })
  const h = harness({ "rootfs.tar.gz": rootfs })
  const commands: Array<string> = []
  h.world.runScript = (command, guest) => {
    commands.push(command)
    if (command.startsWith("echo")) guest.writeFile("/etc/hostname", "alpine\n")
    return { exitCode: 0, stdout: `ran ${commands.length}\n` }
  }
  const exit = await runBuild(
    h,
    [
      "FROM scratch",
      "DISK 2GB MBR",
      'PARTITION 1 FORMAT ext4 OPTIONS "-O ^64bit" MOUNT / FLAGS boot',
      "ADD rootfs.tar.gz /",
      "RUN apk add openssh",
      "RUN echo alpine > /etc/hostname",
      "RUN rc-update add sshd default",
    ].join("\n"),
    defaultOptions("alpine-mbr"),
  )
  assert.ok(Exit.isSuccess(exit), Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "")
  const disk = published(h, "alpine-mbr")
  assert.deepEqual(disk.partitions[0]?.filesystem?.options, ["-O", "^64bit"])
  assert.equal(disk.partitions[0]?.layout.bootable, true)
  assert.ok(fileIn(disk, 1, "/etc/os-release"), "the gzip rootfs was extracted")
  assert.equal(
    text((fileIn(disk, 1, "/etc/hostname") as { content: Uint8Array }).content),
    "alpine\n",
  )
  assert.deepEqual(commands, [
    "apk add openssh",
    "echo alpine > /etc/hostname",
    "rc-update add sshd default",
  ])
  const ops = h.world.ops()
  assert.equal(ops.filter((op) => op === "prepare-chroot").length, 1)
  assert.ok(ops.indexOf("prepare-chroot") > ops.indexOf("extract"), "the chroot is prepared lazily")
  assert.ok(ops.indexOf("prepare-chroot") < ops.indexOf("run"))
  assert.equal(h.report.output(), "ran 1\nran 2\nran 3\n")
})

Deno.test("nested mounts declared out of order mount shallowest first", async () => {
  const h = harness()
  const exit = await runBuild(
    h,
    [
      "FROM scratch",
      "DISK 1 GB GPT",
      "PARTITION 1 SIZE 100 MB FORMAT vfat MOUNT /boot/efi FLAGS efi",
      "PARTITION 2 SIZE 200 MB FORMAT ext4 MOUNT /",
      "PARTITION 3 FORMAT ext4 MOUNT /boot",
    ].join("\n"),
    defaultOptions("nested"),
  )
  assert.ok(Exit.isSuccess(exit), Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "")
  const mounts = h.world.log.flatMap((e) => (e.op === "mount" ? [[e.path, e.partition]] : []))
  assert.deepEqual(mounts, [["/", 2], ["/boot", 3], ["/boot/efi", 1]])
  const disk = published(h, "nested")
  assert.equal(disk.partitions[0]?.layout.type, "efi")
  // The mount points were created in the filesystems below them.
  assert.equal(fileIn(disk, 2, "/boot")?.kind, "directory")
  assert.equal(fileIn(disk, 3, "/efi")?.kind, "directory")
})

const scratchWith = (...lines: Array<string>) =>
  ["FROM scratch", "DISK 1 GB GPT", "PARTITION 1 FORMAT ext4 MOUNT /", ...lines].join("\n")

Deno.test("COPY of a file keeps its mode; of a directory copies its contents; several into /opt/", async () => {
  const h = harness({
    "tool.sh": { content: "#!/bin/sh\necho tool\n", mode: 0o755 },
    "conf/app.conf": "key=value\n",
    "conf/sub/deep.txt": "deep\n",
    "a.txt": "a",
    "b.txt": "b",
  })
  const exit = await runBuild(
    h,
    scratchWith(
      "COPY tool.sh /usr/local/bin/tool",
      "COPY conf /etc/app",
      "COPY a.txt b.txt /opt/",
    ),
    defaultOptions("copies"),
  )
  assert.ok(Exit.isSuccess(exit), Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "")
  const disk = published(h, "copies")
  const tool = fileIn(disk, 1, "/usr/local/bin/tool")
  assert.equal(tool?.kind, "file")
  assert.equal(tool?.mode, 0o755)
  assert.equal(fileIn(disk, 1, "/usr/local/bin")?.kind, "directory", "the parent was created")
  assert.equal(
    text((fileIn(disk, 1, "/etc/app/app.conf") as { content: Uint8Array }).content),
    "key=value\n",
  )
  assert.equal(fileIn(disk, 1, "/etc/app/sub/deep.txt")?.kind, "file")
  assert.equal(fileIn(disk, 1, "/etc/app/conf"), undefined, "a directory copies its contents")
  assert.equal(text((fileIn(disk, 1, "/opt/a.txt") as { content: Uint8Array }).content), "a")
  assert.equal(text((fileIn(disk, 1, "/opt/b.txt") as { content: Uint8Array }).content), "b")
})

Deno.test("a missing COPY source fails before anything is created, naming the source", async () => {
  const h = harness({ "present.txt": "x" })
  const exit = await runBuild(
    h,
    scratchWith("COPY present.txt missing.txt /opt/"),
    defaultOptions("m"),
  )
  const error = failureOf(exit)
  assert.equal(error._tag, "ContextSourceError")
  assert.match(error.message, /'missing\.txt' does not exist/)
  assert.deepEqual(h.world.log, [], "no disk, no VM, no store change")
})

Deno.test("a symlink that escapes the build directory is refused", async () => {
  const h = harness({ "inside.txt": "x", "escape": { symlink: "../../etc/passwd" } })
  const exit = await runBuild(h, scratchWith("COPY escape /etc/stolen"), defaultOptions("s"))
  const error = failureOf(exit)
  assert.equal(error._tag, "ContextSourceError")
  assert.match(error.message, /'escape' points outside the build directory/)
  assert.deepEqual(h.world.log, [])
})

Deno.test("a RUN that exits 3 fails the build and leaves everything as it was", async () => {
  const world = new MemoryWorld()
  const h = harness({}, world)
  world.images.set("keep", "/store/keep")
  world.disks.set("/store/keep", { sizeBytes: MiB, partitions: [] })
  world.runScript = (command) =>
    command === "false-ish" ? { exitCode: 3, stderr: "boom: it broke\n" } : { exitCode: 0 }
  const exit = await runBuild(
    h,
    scratchWith("RUN true", "RUN false-ish", "RUN never"),
    defaultOptions("broken"),
  )
  const error = failureOf(exit)
  assert.equal(error._tag, "StepFailed")
  assert.equal(error.step, 5)
  assert.equal(error.total, 6)
  assert.equal(error.exitCode, 3)
  assert.equal(error.message, "Step 5/6 : RUN false-ish failed: the command exited with status 3")
  assert.deepEqual(error.lastOutput, ["boom: it broke"])
  assert.equal(exitCodeOf(exit as Exit.Exit<unknown, unknown>, { verbose: false }), 1)
  assert.ok(!h.world.log.some((e) => e.op === "run" && e.command === "never"))
  assertClean(h, ["keep"])
})

Deno.test("an interrupted build (mid-RUN) leaves the same clean state", async () => {
  const h = harness()
  let started: () => void = () => {}
  const running = new Promise<void>((resolve) => (started = resolve))
  h.world.runScript = () => Effect.sync(() => started()).pipe(Effect.zipRight(Effect.never))
  const fiber = Effect.runFork(
    build(planOf(scratchWith("RUN sleep infinity")), defaultOptions("interrupted")).pipe(
      Effect.provide(h.layer),
    ),
  )
  await running
  assert.equal(h.world.openSessions, 1)
  const exit = await Effect.runPromise(Fiber.interrupt(fiber))
  assert.ok(Exit.isInterrupted(exit))
  assertClean(h, [])
  assert.equal(h.world.ops().at(-1), "discard", "the VM stops before the image is removed")
})

Deno.test("publishing over an existing name fails without --force and keeps the old image", async () => {
  const h = harness()
  const first = await runBuild(h, scratchWith("RUN echo one"), defaultOptions("same"))
  assert.ok(Exit.isSuccess(first))
  const before = published(h, "same")
  const second = await runBuild(h, scratchWith("RUN echo two"), defaultOptions("same"))
  const error = failureOf(second)
  assert.equal(error._tag, "ImageExists")
  assert.match(error.message, /'same' already exists .*--force/)
  assert.equal(published(h, "same"), before, "the old image is intact")
  const forced = await runBuild(
    h,
    scratchWith("RUN echo three"),
    defaultOptions("same", { force: true }),
  )
  assert.ok(Exit.isSuccess(forced))
  assert.notEqual(published(h, "same"), before)
})

Deno.test("FROM an image: the base is copied, its root found by fstab, and never modified", async () => {
  const h = harness({ "motd": "welcome\n" })
  const base = newTree()
  put(base, "/etc/fstab", {
    kind: "file",
    content: new TextEncoder().encode(
      "/dev/vda1 / ext4 defaults 0 1\n/dev/vda2 /var ext4 defaults 0 2\n",
    ),
    mode: 0o644,
    uid: 0,
    gid: 0,
  })
  const varTree = newTree()
  h.world.disks.set("/store/base", {
    sizeBytes: 64 * MiB,
    table: "gpt",
    partitions: [
      {
        layout: { number: 1, startSector: 2048, sizeSectors: 1000, type: "linux", bootable: false },
        filesystem: { fs: "ext4", options: [], tree: base },
      },
      {
        layout: { number: 2, startSector: 3048, sizeSectors: 1000, type: "linux", bootable: false },
        filesystem: { fs: "ext4", options: [], tree: varTree },
      },
    ],
  })
  h.world.images.set("base", "/store/base")
  h.world.runScript = (command, guest) => {
    if (command === "touch /foobar /var/log.txt") {
      guest.writeFile("/foobar", "")
      guest.writeFile("/var/log.txt", "")
    }
    return { exitCode: 0 }
  }
  const exit = await runBuild(
    h,
    "FROM base\nCOPY motd /etc/motd\nRUN touch /foobar /var/log.txt\n",
    defaultOptions("derived"),
  )
  assert.ok(Exit.isSuccess(exit), Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "")
  const derived = published(h, "derived")
  assert.ok(fileIn(derived, 1, "/foobar"))
  assert.ok(fileIn(derived, 1, "/etc/motd"))
  assert.ok(fileIn(derived, 2, "/log.txt"), "the fstab's /var was mounted")
  assert.equal(base.get("/foobar"), undefined, "the base is unchanged")
  assert.equal(varTree.get("/log.txt"), undefined)
  assert.deepEqual(h.world.ops().slice(0, 4), ["convert", "boot", "discover-root", "mount"])
})

Deno.test("INSPECT without a terminal fails with a clear message instead of hanging", async () => {
  const h = harness()
  const exit = await runBuild(h, scratchWith("INSPECT"), defaultOptions("inspect"))
  const error = failureOf(exit)
  assert.equal(error._tag, "StepFailed")
  assert.match(error.message, /Step 4\/4 : INSPECT failed: INSPECT needs an interactive terminal/)
  assertClean(h, [])
  const interactive = harness()
  const ok = await runBuild(
    interactive,
    scratchWith("INSPECT"),
    defaultOptions("i", { interactive: true }),
  )
  assert.ok(Exit.isSuccess(ok))
  assert.ok(interactive.world.ops().includes("shell"))
})
