/**
 * Guest commands run for real on the host: the sfdisk tables, mkfs argv and the COPY/ADD
 * scripts of guest/scripts/, against image files and temporary directories; the shell reads
 * rendered commands back.
 */
import assert from "node:assert/strict"
import {
  ext4HashSeed,
  filesystemUuid,
  gptDiskGuid,
  gptPartitionGuid,
  mbrDiskId,
  vfatVolumeId,
} from "../../src/domain/reproducible_ids.ts"
import {
  BUILD_ROOT,
  CHROOT_PREFIX,
  commandFor,
  CONTEXT_DIR,
  GUEST_SCRIPT_DIR,
  type GuestCommand,
  mkfsArgv,
  quote,
  renderCommand,
  sfdiskScript,
} from "../../src/domain/guest/commands.ts"
import { GuestOperation, type GuestSource } from "../../src/domain/guest/operation.ts"
import type { DiskLayout } from "../../src/domain/plan.ts"
import { failingCommand } from "../../src/layers/qemu/vm_session.ts"
import { runHost as run } from "../support/host_tool.ts"

/** guest/scripts/ in this checkout: the files the initramfs ships at GUEST_SCRIPT_DIR. */
const SCRIPTS = new URL("../../guest/scripts/", import.meta.url).pathname

const MiB = 1024 * 1024

const mustRun = async (argv: ReadonlyArray<string>) => {
  const result = await run(argv)
  if (result.code !== 0) throw new Error(`${argv.join(" ")}: ${result.stderr}`)
  return result.stdout
}

const pidNamespaces = (await run(["unshare", "--fork", "--pid", "true"])).code === 0
if (!pidNamespaces) console.warn("Skipping the PID namespace case: this host cannot create one")

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
    readonly id: string
    readonly partitions: ReadonlyArray<
      {
        readonly node: string
        readonly start: number
        readonly size: number
        readonly type: string
        readonly attrs?: string
        readonly uuid?: string
        readonly bootable?: boolean
      }
    >
  }
}

const writeTable = async (layout: DiskLayout, seed?: string): Promise<SfdiskDump> => {
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
    await writer.write(new TextEncoder().encode(sfdiskScript(layout, seed)))
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

Deno.test("mkfsArgv forces over old signatures and passes the options as given", async () => {
  assert.deepEqual(mkfsArgv("/dev/sda1", "ext4", ["-L", "my root"]), [
    "mkfs.ext4",
    "-F",
    "-L",
    "my root",
    "/dev/sda1",
  ])
  assert.deepEqual(mkfsArgv("/dev/sda2", "xfs", ["-m", "crc=0"])[1], "-f")
  assert.deepEqual(mkfsArgv("/dev/sda3", "swap", []), ["mkswap", "/dev/sda3"])

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

Deno.test("with a seed, the tables' and filesystems' identifiers are the derived ones, every time", async () => {
  const seed = "5e".repeat(32)
  const gpt: DiskLayout = {
    table: "gpt",
    sizeBytes: 32 * MiB,
    partitions: [
      { number: 1, startSector: 2048, sizeSectors: 8192, type: "efi", bootable: false },
      { number: 2, startSector: 10240, sizeSectors: 43008, type: "linux", bootable: false },
    ],
  }
  const [first, again] = [await writeTable(gpt, seed), await writeTable(gpt, seed)]
  assert.equal(first.partitiontable.id.toLowerCase(), gptDiskGuid(seed))
  assert.deepEqual(
    first.partitiontable.partitions.map((p) => p.uuid?.toLowerCase()),
    [gptPartitionGuid(seed, 1), gptPartitionGuid(seed, 2)],
  )
  // The image file's name aside, which is another temporary one.
  const ids = (dump: SfdiskDump) => [
    dump.partitiontable.id,
    ...dump.partitiontable.partitions.map((p) => p.uuid),
  ]
  assert.deepEqual(ids(again), ids(first))
  const mbr = await writeTable({ ...gpt, table: "mbr" }, seed)
  assert.equal(mbr.partitiontable.id, mbrDiskId(seed))

  const dir = await Deno.makeTempDir()
  try {
    const image = await imageFile(dir, 320 * MiB)
    const probe = async (tag: string) =>
      (await mustRun(["blkid", "-p", "-o", "value", "-s", tag, image])).trim()
    const partition = { seed, partition: 2 }
    const cases: Array<[Parameters<typeof mkfsArgv>[1], string]> = [
      ["ext4", filesystemUuid(seed, 2)],
      ["swap", filesystemUuid(seed, 2)],
      // mkfs.vfat's volume id, as blkid shows it: XXXX-XXXX.
      ["vfat", vfatVolumeId(seed, 2).toUpperCase().replace(/^(.{4})/, "$1-")],
    ]
    if (await hasTool("mkfs.xfs")) cases.push(["xfs", filesystemUuid(seed, 2)])
    for (const [fs, uuid] of cases) {
      await mustRun([...mkfsArgv(image, fs, [], partition).slice(0, -1), image])
      assert.equal(await probe("UUID"), uuid, fs)
      if (fs === "ext4") {
        const header = await mustRun(["dumpe2fs", "-h", image])
        assert.match(header, new RegExp(`Directory Hash Seed:\\s+${ext4HashSeed(seed, 2)}`))
      }
    }
    // The Imagefile's own choice comes after the derived one, and wins.
    const own = "0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b"
    await mustRun([...mkfsArgv(image, "ext4", ["-U", own], partition).slice(0, -1), image])
    assert.equal(await probe("UUID"), own)
  } finally {
    await Deno.remove(dir, { recursive: true })
  }
})

Deno.test({
  name: "killing a RUN's unshare kills every process of the RUN (its PID namespace)",
  // Creating a PID namespace needs root, as the helper VM's agent has.
  ignore: !pidNamespaces,
  fn: async () => {
    const prefix = CHROOT_PREFIX.filter((arg) => !arg.startsWith("--mount-proc"))
    const unshare = prefix.slice(0, prefix.indexOf("chroot"))
    // A duration no other process sleeps for: its command line is the marker.
    const marker = `300.${crypto.getRandomValues(new Uint32Array(1))[0]}`
    // Two sleepers in the background and one in front, as `RUN a & b & c` would leave them.
    const child = new Deno.Command(unshare[0]!, {
      args: [
        ...unshare.slice(1),
        "sh",
        "-c",
        `sleep ${marker} & sleep ${marker} & sleep ${marker}`,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn()
    const sleepers = async () =>
      (await run(["pgrep", "-f", `^sleep ${marker}$`])).stdout.split("\n").filter((line) =>
        line !== ""
      )
    for (let tries = 0; (await sleepers()).length < 3 && tries < 100; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.equal((await sleepers()).length, 3)
    child.kill("SIGKILL")
    await child.status
    for (let tries = 0; (await sleepers()).length > 0 && tries < 100; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.deepEqual(await sleepers(), [])
  },
})

Deno.test("quote renders words a POSIX shell reads back unchanged", async () => {
  const words = ["plain", "with space", "it's", "$HOME", "a\nb", "", "*", "--opt=x"]
  const echoed = await mustRun(["sh", "-c", `printf '%s\\0' ${words.map(quote).join(" ")}`])
  assert.deepEqual(echoed.split("\0").slice(0, -1), words)
})

/**
 * Run a guest command on the host: its script from guest/scripts/, with the build root and
 * BUILD_DIR moved to temp dirs.
 */
const runRelocated = async (command: GuestCommand, root: string, context: string) => {
  const argv = command.argv.map((arg, i) =>
    i === 0
      ? arg.replace(`${GUEST_SCRIPT_DIR}/`, SCRIPTS)
      : arg.replace(BUILD_ROOT, root).replace(CONTEXT_DIR, context)
  )
  return await run(argv)
}

const source = (path: string, kind: GuestSource["kind"]): GuestSource => ({
  source: path,
  path,
  kind,
})

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

    const copyDir = commandFor(GuestOperation.CopyIn({
      sources: [source("conf", "directory")],
      destination: "/etc",
    }))
    assert.deepEqual((await runRelocated(copyDir, root, context)).code, 0)
    const copyFile = commandFor(GuestOperation.CopyIn({
      sources: [source("tool.sh", "file")],
      destination: "/usr/local/bin/tool",
    }))
    const result = await runRelocated(copyFile, root, context)
    assert.deepEqual(result.code, 0, result.stderr)
    const several = commandFor(GuestOperation.CopyIn({
      sources: [source("tool.sh", "file"), source("conf/sub", "directory")],
      destination: "/opt/x",
    }))
    assert.deepEqual((await runRelocated(several, root, context)).code, 0)

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
    const command = commandFor(GuestOperation.CopyIn({
      sources: [source("d", "directory")],
      destination: "/srv/",
    }))
    assert.deepEqual((await runRelocated(command, root, context)).code, 0)
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
      const command = commandFor(GuestOperation.Extract({
        source: source(`rootfs.${tool}.data`, "file"),
        destination: `/${tool}`,
      }))
      const result = await runRelocated(command, root, context)
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
    const plain = commandFor(GuestOperation.Extract({
      source: source("notes.gz", "file"),
      destination: "/doc/notes.gz",
    }))
    assert.deepEqual((await runRelocated(plain, root, context)).code, 0)
    assert.deepEqual(await Deno.readTextFile(`${root}/doc/notes.gz`), "not compressed at all")
  })
})

Deno.test("ADD of a damaged archive fails; a compressed file that is no tar is copied as it is", async () => {
  await withDirs(async (root, context) => {
    await Deno.mkdir(`${context}/src`)
    await Deno.writeTextFile(`${context}/src/file`, "x".repeat(100_000))
    await mustRun(["tar", "-C", `${context}/src`, "-czf", `${context}/good.tar.gz`, "."])
    // The gzip magic and header intact, the deflate stream garbage.
    const good = await Deno.readFile(`${context}/good.tar.gz`)
    const damaged = good.slice()
    damaged.fill(0x55, 20, damaged.length - 8)
    await Deno.writeFile(`${context}/damaged.tar.gz`, damaged)
    const extract = (name: string, destination: string) =>
      runRelocated(
        commandFor(GuestOperation.Extract({ source: source(name, "file"), destination })),
        root,
        context,
      )
    const failed = await extract("damaged.tar.gz", "/damaged")
    assert.notEqual(failed.code, 0)
    assert.match(failed.stderr, /damaged\.tar\.gz looks compressed \(gzip\) but is damaged/)
    assert.equal(await Deno.stat(`${root}/damaged`).catch(() => undefined), undefined)

    await mustRun([
      "sh",
      "-c",
      'printf "just text\\n" | gzip -c > "$1"',
      "sh",
      `${context}/notes.txt.gz`,
    ])
    const copied = await extract("notes.txt.gz", "/doc/notes.txt.gz")
    assert.equal(copied.code, 0, copied.stderr)
    assert.deepEqual(
      await Deno.readFile(`${root}/doc/notes.txt.gz`),
      await Deno.readFile(`${context}/notes.txt.gz`),
    )
  })
})

Deno.test("a script names the command in it that failed, which the session reports", async () => {
  await withDirs(async (root, context) => {
    const failed = await runRelocated(
      commandFor(GuestOperation.CopyIn({
        sources: [source("vanished", "file")],
        destination: "/etc/vanished",
      })),
      root,
      context,
    )
    assert.equal(failed.code, 1)
    const named = failingCommand(failed.stderr.split("\n"))
    assert.equal(
      named,
      `\`cp -a -H ${context}/vanished ${root}/etc/vanished\` exited with status 1`,
    )
  })
})

Deno.test("renderCommand shows every operation as the shell line that runs it", async () => {
  const copy = renderCommand(commandFor(GuestOperation.CopyIn({
    sources: [source("my file", "file")],
    destination: "/etc/",
  })))
  assert.ok(copy.includes(`'${CONTEXT_DIR}/my file'`), copy)
  const partition = renderCommand(commandFor(GuestOperation.PartitionDisk({
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
  })))
  assert.ok(partition.includes("start=2048, size=10, type=0FC63DAF"))
  // A shell reads the rendered line back into the very argv.
  const command = commandFor(GuestOperation.Run({ command: `echo "it's" $HOME\nls` }))
  const echoed = await mustRun([
    "sh",
    "-c",
    `printf '%s\\0' ${renderCommand({ argv: command.argv })}`,
  ])
  assert.deepEqual(echoed.split("\0").slice(0, -1), command.argv)
})

/** One of each operation, to check what they run. */
const EVERY_OPERATION: ReadonlyArray<GuestOperation> = [
  GuestOperation.PartitionDisk({ layout: { table: "mbr", sizeBytes: MiB, partitions: [] } }),
  GuestOperation.Format({ partition: 1, fs: "ext4", options: [] }),
  GuestOperation.MountPartitions({ mounts: [{ partition: 1, path: "/" }] }),
  GuestOperation.DiscoverRoot(),
  GuestOperation.PrepareChroot(),
  GuestOperation.CopyIn({ sources: [source("a", "file")], destination: "/a" }),
  GuestOperation.Extract({ source: source("a.tar", "file"), destination: "/" }),
  GuestOperation.Run({ command: "true" }),
  GuestOperation.Shell({ console: "/dev/hvc0", rows: 24, columns: 80 }),
  GuestOperation.Sync(),
  GuestOperation.Release(),
]

Deno.test("every script an operation runs is in guest/scripts, executable, valid POSIX shell", async () => {
  const scripts = EVERY_OPERATION.map((operation) => commandFor(operation).argv[0])
    .filter((program) => program.startsWith(`${GUEST_SCRIPT_DIR}/`))
  assert.equal(scripts.length, 8)
  for (const program of scripts) {
    const file = program.replace(`${GUEST_SCRIPT_DIR}/`, SCRIPTS)
    const info = await Deno.stat(file)
    assert.ok(((info.mode ?? 0) & 0o111) !== 0, `${file} is executable`)
    assert.match(await Deno.readTextFile(file), /^#!\/bin\/sh\n/, `${file} has a shebang`)
    const checked = await run(["sh", "-n", file])
    assert.equal(checked.code, 0, `${checked.stderr}\n${file}`)
  }
})
