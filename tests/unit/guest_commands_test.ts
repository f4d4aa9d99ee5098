/**
 * Guest commands: the argv shapes, and the generated sfdisk scripts, mkfs argv and COPY/ADD
 * scripts run for real on the host against image files and temporary directories.
 */
import assert from "node:assert/strict"
import {
  BUILD_ROOT,
  commandsFor,
  CONTEXT_DIR,
  copyCommands,
  describe,
  extractCommands,
  type GuestCommand,
  type GuestOperation,
  mkfsArgv,
  mountCommands,
  partitionCommands,
  partitionDevice,
  prepareChrootCommands,
  quote,
  runArgv,
  sfdiskScript,
} from "../../src/domain/guest_commands.ts"
import type { DiskLayout } from "../../src/domain/plan.ts"
import { runHost as run } from "../host_tool.ts"

const MiB = 1024 * 1024

const mustRun = async (argv: ReadonlyArray<string>) => {
  const result = await run(argv)
  if (result.code !== 0) throw new Error(`${argv.join(" ")}: ${result.stderr}`)
  return result.stdout
}

const hasTool = async (name: string) => (await run(["sh", "-c", `command -v ${name}`])).code === 0

/** An empty sparse file of `bytes`. */
const imageFile = async (dir: string, bytes: number) => {
  const path = `${dir}/disk.img`
  const file = await Deno.open(path, { create: true, write: true })
  await file.truncate(bytes)
  file.close()
  return path
}

interface SfdiskDump {
  readonly partitiontable: {
    readonly label: string
    readonly partitions: ReadonlyArray<
      {
        readonly node: string
        readonly start: number
        readonly size: number
        readonly type: string
        readonly attrs?: string
        readonly bootable?: boolean
      }
    >
  }
}

const writeTable = async (layout: DiskLayout): Promise<SfdiskDump> => {
  const dir = await Deno.makeTempDir()
  try {
    const image = await imageFile(dir, layout.sizeBytes)
    const child = new Deno.Command("sfdisk", {
      args: ["--quiet", image],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn()
    const writer = child.stdin.getWriter()
    await writer.write(new TextEncoder().encode(sfdiskScript(layout)))
    await writer.close()
    const result = await child.output()
    assert.deepEqual(result.code, 0, new TextDecoder().decode(result.stderr))
    return JSON.parse(await mustRun(["sfdisk", "--json", image])) as SfdiskDump
  } finally {
    await Deno.remove(dir, { recursive: true })
  }
}

Deno.test("sfdiskScript writes a GPT table with the exact sectors, types and attributes", async () => {
  const layout: DiskLayout = {
    table: "gpt",
    sizeBytes: 64 * MiB,
    partitions: [
      { number: 1, startSector: 2048, sizeSectors: 8192, type: "bios_grub", bootable: false },
      { number: 2, startSector: 10240, sizeSectors: 20480, type: "efi", bootable: false },
      { number: 3, startSector: 30720, sizeSectors: 8192, type: "swap", bootable: false },
      { number: 4, startSector: 38912, sizeSectors: 92126, type: "linux", bootable: true },
    ],
  }
  const dump = await writeTable(layout)
  assert.deepEqual(dump.partitiontable.label, "gpt")
  const parts = dump.partitiontable.partitions
  assert.deepEqual(
    parts.map((p) => [p.start, p.size]),
    layout.partitions.map((p) => [p.startSector, p.sizeSectors]),
  )
  assert.deepEqual(parts.map((p) => p.type), [
    "21686148-6449-6E6F-744E-656564454649",
    "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
    "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
    "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
  ])
  assert.deepEqual(parts.map((p) => p.attrs), [
    undefined,
    undefined,
    undefined,
    "LegacyBIOSBootable",
  ])
})

Deno.test("sfdiskScript writes an MBR table with the bootable flag", async () => {
  const layout: DiskLayout = {
    table: "mbr",
    sizeBytes: 32 * MiB,
    partitions: [
      { number: 2, startSector: 20480, sizeSectors: 45056, type: "linux", bootable: true },
      { number: 1, startSector: 2048, sizeSectors: 18432, type: "swap", bootable: false },
    ],
  }
  const dump = await writeTable(layout)
  assert.deepEqual(dump.partitiontable.label, "dos")
  const parts = dump.partitiontable.partitions
  assert.deepEqual(parts.map((p) => [p.start, p.size, p.type]), [[2048, 18432, "82"], [
    20480,
    45056,
    "83",
  ]])
  assert.deepEqual(parts.map((p) => p.bootable ?? false), [false, true])
})

Deno.test("partitionCommands hands the script and the devices to wait for as arguments", () => {
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
  const [command] = partitionCommands(layout)
  assert.deepEqual(command!.argv.slice(3), ["sh", "/dev/vda", sfdiskScript(layout), "/dev/vda1"])
  assert.deepEqual(partitionDevice(12), "/dev/vda12")
})

Deno.test("mkfsArgv forces over old signatures and passes the options as given", async () => {
  assert.deepEqual(mkfsArgv("/dev/vda1", "ext4", ["-L", "my root"]), [
    "mkfs.ext4",
    "-F",
    "-L",
    "my root",
    "/dev/vda1",
  ])
  assert.deepEqual(mkfsArgv("/dev/vda2", "xfs", ["-m", "crc=0"])[1], "-f")
  assert.deepEqual(mkfsArgv("/dev/vda3", "swap", []), ["mkswap", "/dev/vda3"])

  // Run them on an image file that already holds another filesystem: none may refuse or ask.
  const dir = await Deno.makeTempDir()
  try {
    const image = await imageFile(dir, 320 * MiB)
    const cases: Array<[Parameters<typeof mkfsArgv>[1], ReadonlyArray<string>, string]> = [
      ["ext4", ["-L", "my root", "-O", "^has_journal"], "ext4"],
      ["ext2", [], "ext2"],
      ["vfat", ["-n", "ESP"], "vfat"],
      ["swap", [], "swap"],
    ]
    if (await hasTool("mkfs.xfs")) cases.splice(2, 0, ["xfs", ["-m", "crc=0"], "xfs"])
    for (const [fs, options, type] of cases) {
      await mustRun([...mkfsArgv(image, fs, options).slice(0, -1), image])
      const probed = await mustRun(["blkid", "-p", "-o", "value", "-s", "TYPE", image])
      assert.deepEqual(probed.trim(), type)
    }
    const label = await mustRun(["blkid", "-p", "-o", "value", "-s", "LABEL", image])
    assert.deepEqual(label.trim(), "") // the xfs or swap run replaced the labelled filesystems
  } finally {
    await Deno.remove(dir, { recursive: true })
  }
})

Deno.test("mounts create each mount point and go under the build root in the given order", () => {
  const argv = mountCommands([{ partition: 2, path: "/" }, { partition: 1, path: "/boot/efi" }])
    .map((command) => command.argv)
  assert.deepEqual(argv, [
    ["mkdir", "-p", BUILD_ROOT],
    ["mount", "/dev/vda2", BUILD_ROOT],
    ["mkdir", "-p", `${BUILD_ROOT}/boot/efi`],
    ["mount", "/dev/vda1", `${BUILD_ROOT}/boot/efi`],
  ])
})

Deno.test("the chroot gets dev, dev/pts, dev/shm, proc, sys, run, tmp and resolv.conf", () => {
  // One guest command: the build root, then path/type/options/source for each mount.
  const [command, ...others] = prepareChrootCommands()
  assert.deepEqual(others, [])
  assert.equal(command?.argv[4], BUILD_ROOT)
  const quads = command?.argv.slice(5) ?? []
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
    describe({ _tag: "PrepareChroot" }).includes(
      `mount -t proc -o nosuid,noexec,nodev proc ${BUILD_ROOT}/proc`,
    ),
  )
  assert.ok(describe({ _tag: "PrepareChroot" }).join("\n").includes("resolv.conf"))
})

Deno.test("RUN passes the command verbatim as one argument in a PID namespace", () => {
  const command = `echo "it's" $HOME > /etc/motd && ls | wc -l # not a comment to us`
  const argv = runArgv(command)
  assert.deepEqual(argv.slice(0, 3), ["unshare", "--fork", "--pid"])
  assert.deepEqual(argv.slice(-5), ["chroot", BUILD_ROOT, "/bin/sh", "-c", command])
  assert.deepEqual(describe({ _tag: "Run", command }).length, 1)
  assert.ok(describe({ _tag: "Run", command })[0]!.endsWith(quote(command)))
})

Deno.test("quote renders words a POSIX shell reads back unchanged", async () => {
  const words = ["plain", "with space", "it's", "$HOME", "a\nb", "", "*", "--opt=x"]
  const echoed = await mustRun(["sh", "-c", `printf '%s\\0' ${words.map(quote).join(" ")}`])
  assert.deepEqual(echoed.split("\0").slice(0, -1), words)
})

/** Run a guest command on the host with the build root and BUILD_DIR moved to temp dirs. */
const runRelocated = async (command: GuestCommand, root: string, context: string) => {
  const argv = command.argv.map((arg, i) =>
    i < 4 ? arg : arg.replace(BUILD_ROOT, root).replace(CONTEXT_DIR, context)
  )
  return await run(argv)
}

const listing = async (dir: string): Promise<Record<string, string>> => {
  const out = await mustRun(["find", dir, "-mindepth", "1", "-printf", "%P %y %m\\n"])
  return Object.fromEntries(
    out.split("\n").filter(Boolean).map((line) => {
      const [path, ...rest] = line.split(" ")
      return [path!, rest.join(" ")]
    }),
  )
}

const withDirs = async (body: (root: string, context: string) => Promise<void>) => {
  const root = await Deno.makeTempDir()
  const context = await Deno.makeTempDir()
  try {
    await body(root, context)
  } finally {
    await Deno.remove(root, { recursive: true })
    await Deno.remove(context, { recursive: true })
  }
}

Deno.test("COPY: a directory gives its contents, a file keeps its mode, parents are created", async () => {
  await withDirs(async (root, context) => {
    await Deno.mkdir(`${context}/conf/sub`, { recursive: true })
    await Deno.writeTextFile(`${context}/conf/sub/a.txt`, "a")
    await Deno.writeTextFile(`${context}/conf/.hidden`, "h")
    await Deno.writeTextFile(`${context}/tool.sh`, "#!/bin/sh\n")
    await Deno.chmod(`${context}/tool.sh`, 0o755)
    await Deno.mkdir(`${root}/etc`)
    await Deno.writeTextFile(`${root}/etc/existing`, "keep")

    const copyDir = copyCommands({
      sources: [{ path: "conf", kind: "directory" }],
      destination: "/etc",
    })
    assert.deepEqual((await runRelocated(copyDir[0]!, root, context)).code, 0)
    const copyFile = copyCommands({
      sources: [{ path: "tool.sh", kind: "file" }],
      destination: "/usr/local/bin/tool",
    })
    const result = await runRelocated(copyFile[0]!, root, context)
    assert.deepEqual(result.code, 0, result.stderr)
    const several = copyCommands({
      sources: [{ path: "tool.sh", kind: "file" }, { path: "conf/sub", kind: "directory" }],
      destination: "/opt/x",
    })
    assert.deepEqual((await runRelocated(several[0]!, root, context)).code, 0)

    const files = await listing(root)
    assert.deepEqual(files["etc/existing"], "f 644")
    assert.deepEqual(files["etc/.hidden"], "f 644")
    assert.deepEqual(files["etc/sub/a.txt"], "f 644")
    assert.deepEqual(files["etc/conf"], undefined)
    assert.deepEqual(files["usr/local/bin/tool"], "f 755")
    assert.deepEqual(files["opt/x/tool.sh"], "f 755")
    assert.deepEqual(files["opt/x/a.txt"], "f 644")
    assert.deepEqual(await Deno.readTextFile(`${root}/usr/local/bin/tool`), "#!/bin/sh\n")
  })
})

Deno.test("COPY: a user-owned BUILD_DIR lands owned by root, without touching what was there", async () => {
  if (Deno.uid() !== 0) return // chown to another user needs root
  await withDirs(async (root, context) => {
    await Deno.mkdir(`${context}/d`)
    await Deno.writeTextFile(`${context}/d/f`, "f")
    await mustRun(["chown", "-R", "1000:1000", `${context}/d`])
    await Deno.mkdir(`${root}/srv`)
    await Deno.writeTextFile(`${root}/srv/mine`, "m")
    await mustRun(["chown", "4242:4242", `${root}/srv/mine`])
    const [command] = copyCommands({
      sources: [{ path: "d", kind: "directory" }],
      destination: "/srv/",
    })
    assert.deepEqual((await runRelocated(command!, root, context)).code, 0)
    assert.deepEqual((await Deno.stat(`${root}/srv/f`)).uid, 0)
    assert.deepEqual((await Deno.stat(`${root}/srv/mine`)).uid, 4242)
  })
})

Deno.test("ADD extracts compressed archives recognised by content, and copies other files", async () => {
  await withDirs(async (root, context) => {
    await Deno.mkdir(`${context}/src/bin`, { recursive: true })
    await Deno.writeTextFile(`${context}/src/bin/busybox`, "binary")
    await Deno.chmod(`${context}/src/bin/busybox`, 0o4755)
    await Deno.symlink("busybox", `${context}/src/bin/sh`)
    await Deno.link(`${context}/src/bin/busybox`, `${context}/src/bin/ls`)
    await mustRun([
      "tar",
      "-C",
      `${context}/src`,
      "--numeric-owner",
      "--owner=0",
      "--group=0",
      "-cf",
      `${context}/a.tar`,
      ".",
    ])
    const compressors = ["gzip", "xz", "bzip2", "zstd"]
    for (const tool of compressors) {
      if (!(await hasTool(tool))) continue
      await mustRun([
        "sh",
        "-c",
        `${tool} -c "$1" > "$2"`,
        "sh",
        `${context}/a.tar`,
        `${context}/rootfs.${tool}.data`,
      ])
      const [command] = extractCommands({
        source: { path: `rootfs.${tool}.data`, kind: "file" },
        destination: `/${tool}`,
      })
      const result = await runRelocated(command!, root, context)
      assert.deepEqual(result.code, 0, result.stderr)
      const files = await listing(`${root}/${tool}`)
      assert.deepEqual(files["bin/busybox"], "f 4755", tool)
      assert.deepEqual(files["bin/sh"], "l 777", tool)
      const [busybox, ls] = [
        await Deno.stat(`${root}/${tool}/bin/busybox`),
        await Deno.stat(`${root}/${tool}/bin/ls`),
      ]
      assert.deepEqual(busybox.ino, ls.ino, `${tool}: the hard link is kept`)
    }
    await Deno.writeTextFile(`${context}/notes.gz`, "not compressed at all")
    const [plain] = extractCommands({
      source: { path: "notes.gz", kind: "file" },
      destination: "/doc/notes.gz",
    })
    assert.deepEqual((await runRelocated(plain!, root, context)).code, 0)
    assert.deepEqual(await Deno.readTextFile(`${root}/doc/notes.gz`), "not compressed at all")
  })
})

Deno.test("describe shows every operation as readable lines", () => {
  const lines = describe({
    _tag: "CopyIn",
    sources: [{ path: "my file", kind: "file" }],
    destination: "/etc/",
  })
  assert.ok(lines.some((line) => line.includes(`'${CONTEXT_DIR}/my file'`)), lines.join("\n"))
  const partition = describe({
    _tag: "PartitionDisk",
    layout: {
      table: "gpt",
      sizeBytes: 64 * MiB,
      partitions: [{
        number: 1,
        startSector: 2048,
        sizeSectors: 10,
        type: "linux",
        bootable: false,
      }],
    },
  })
  assert.ok(partition.join("\n").includes("start=2048, size=10, type=0FC63DAF"))
})

Deno.test("every guest script is valid POSIX shell", async () => {
  const operations: ReadonlyArray<GuestOperation> = [
    {
      _tag: "PartitionDisk",
      layout: { table: "mbr", sizeBytes: MiB, partitions: [] },
    },
    { _tag: "DiscoverRoot" },
    { _tag: "PrepareChroot" },
    { _tag: "CopyIn", sources: [{ path: "a", kind: "file" }], destination: "/a" },
    { _tag: "Extract", source: { path: "a.tar", kind: "file" }, destination: "/" },
    { _tag: "Shell", console: "/dev/hvc0", rows: 24, columns: 80 },
    { _tag: "Release" },
  ]
  const scripts = operations.flatMap((operation) => commandsFor(operation))
    .filter((command) => command.argv[0] === "/bin/sh")
    .map((command) => command.argv[2]!)
  assert.equal(scripts.length, operations.length)
  for (const script of scripts) {
    const checked = await run(["sh", "-n", "-c", script])
    assert.equal(checked.code, 0, `${checked.stderr}\n${script}`)
  }
})
