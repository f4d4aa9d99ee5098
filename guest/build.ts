/**
 * `deno task guest`: assemble the helper VM's kernel, initramfs and runtime disk from pinned
 * Debian packages into guest/dist (see guest/README.md).
 *
 *   deno task guest                  build (does nothing when guest/dist is up to date)
 *   deno task guest --update-pins    pin the versions apt offers now into guest/pins.json
 *   --out DIR                        write the artifacts to DIR instead of guest/dist
 *   --agent FILE                     package FILE as the agent instead of guest/agent.ts
 *   --deno-in-initramfs              put Deno and the agent in the initramfs, no runtime disk
 *   --compression none|gzip|zstd     how the initramfs is compressed (none by default: under
 *                                    TCG the kernel unpacks a gzip initramfs ~1 s slower)
 *
 * Every program is taken from the pinned packages, and so are the tools the recipe runs
 * (depmod, mke2fs, debugfs, zstd, gzip, through the pinned dynamic loader), so the output
 * depends on the pins and the sources only: the same inputs give the same bytes.
 */
import { type CpioEntry, writeCpio } from "./recipe/cpio.ts"
import { fetchDeb, type Pin, pinFor, readPins, resolvePins, unpackDeb } from "./recipe/debs.ts"
import { elfDependencies } from "./recipe/elf.ts"
import { selectModules } from "./recipe/modules.ts"
import { fail, RecipeError, run, runBytes, sha256Hex } from "./recipe/process.ts"

const GUEST_DIR = new URL(".", import.meta.url).pathname.replace(/\/$/, "")
const REPO_DIR = new URL("..", import.meta.url).pathname.replace(/\/$/, "")
const PINS_FILE = `${GUEST_DIR}/pins.json`
const CACHE_DIR = `${GUEST_DIR}/cache`

/** The packages pinned in guest/pins.json (linux-image-amd64 stands for its kernel package). */
export const PACKAGES = [
  "linux-image-amd64",
  "libc6",
  "libgcc-s1",
  "busybox-static",
  "dash",
  "coreutils",
  "util-linux",
  "mount",
  "fdisk",
  "libblkid1",
  "libmount1",
  "libsmartcols1",
  "libuuid1",
  "libfdisk1",
  "libselinux1",
  "libpcre2-8-0",
  "libudev1",
  "libcap-ng0",
  "libcap2",
  "libtinfo6",
  "libsystemd0",
  "libgcrypt20",
  "libgpg-error0",
  "liblz4-1",
  "e2fsprogs",
  "libext2fs2",
  "libcom-err2",
  "libss2",
  "xfsprogs",
  "libinih1",
  "liburcu8",
  "dosfstools",
  "lvm2",
  "dmsetup",
  "libdevmapper1.02.1",
  "libdevmapper-event1.02.1",
  "libaio1",
  "libreadline8",
  "libedit2",
  "libbsd0",
  "libmd0",
  "tar",
  "libacl1",
  "libattr1",
  "libgmp10",
  "gzip",
  "xz-utils",
  "liblzma5",
  "bzip2",
  "libbz2-1.0",
  "zstd",
  "libzstd1",
  "zlib1g",
  "kmod",
  "libkmod2",
  "libssl3",
]

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

/**
 * Kernel modules loaded by init before the agent starts (with their dependencies; a built-in
 * one is skipped): the virtio devices, and ext4 for the runtime disk.
 */
const BOOT_MODULES = [
  "virtio_pci",
  "virtio_blk",
  "virtio_console",
  "virtio_net",
  "virtio_rng",
  "9pnet_virtio",
  "9p",
  "crc32c_generic",
  "ext4",
  "af_packet",
]

/**
 * Modules shipped but loaded only when used: the kernel asks modprobe for them on the first
 * mount of such a filesystem or the first use of device-mapper or loop devices.
 */
const ON_DEMAND_MODULES = [
  "xfs",
  "vfat",
  "nls_cp437",
  "nls_ascii",
  "nls_iso8859_1",
  "nls_utf8",
  "dm_mod",
  "dm_snapshot",
  "dm_thin_pool",
  "dm_mirror",
  "loop",
  "crc32c_intel",
]

/** Tools and libraries searched for here, in the unpacked packages. */
const LIBRARY_DIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"]
const LOADER = "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"

/** Fixed identity and time of the runtime disk, so its bytes never depend on when it was made. */
const RUNTIME_UUID = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
const RUNTIME_HASH_SEED = "0b1d2f3e-5a69-4c7d-8e9f-a0b1c2d3e4f5"
const RUNTIME_LABEL = "transient-rt"
const FIXED_TIME = 1

type Compression = "none" | "gzip" | "zstd"

interface Options {
  readonly updatePins: boolean
  readonly out: string
  readonly agent: string
  readonly denoInInitramfs: boolean
  readonly compression: Compression
}

const parseOptions = (args: ReadonlyArray<string>): Options => {
  let updatePins = false
  let out = `${GUEST_DIR}/dist`
  let agent = `${GUEST_DIR}/agent.ts`
  let denoInInitramfs = false
  let compression: Compression = "none"
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!
    const value = () => args[++index] ?? fail(`${arg} needs a value`)
    if (arg === "--update-pins") updatePins = true
    else if (arg === "--out") out = absolute(value())
    else if (arg === "--agent") agent = absolute(value())
    else if (arg === "--deno-in-initramfs") denoInInitramfs = true
    else if (arg === "--compression") {
      const chosen = value()
      if (chosen !== "none" && chosen !== "gzip" && chosen !== "zstd") {
        fail("--compression is none, gzip or zstd")
      }
      compression = chosen as Compression
    } else fail(`unknown option ${arg}`)
  }
  return { updatePins, out, agent, denoInInitramfs, compression }
}

const parentOf = (path: string) => path.slice(0, path.lastIndexOf("/"))

const absolute = (path: string) => (path.startsWith("/") ? path : `${Deno.cwd()}/${path}`)

const exists = async (path: string) => {
  try {
    await Deno.lstat(path)
    return true
  } catch {
    return false
  }
}

/** Follow symlinks inside `root` as if it were `/`; undefined when the path does not exist. */
const resolveIn = (root: string, path: string): string | undefined => {
  let pending = path.split("/").filter((part) => part !== "")
  let resolved: Array<string> = []
  for (let hops = 0; pending.length > 0;) {
    const part = pending.shift()!
    if (part === ".") continue
    if (part === "..") {
      resolved.pop()
      continue
    }
    const candidate = [...resolved, part]
    let info: Deno.FileInfo
    try {
      info = Deno.lstatSync(`${root}/${candidate.join("/")}`)
    } catch {
      return undefined
    }
    if (!info.isSymlink) {
      resolved = candidate
      continue
    }
    if (++hops > 40) fail(`too many symlinks resolving ${path}`)
    const target = Deno.readLinkSync(`${root}/${candidate.join("/")}`)
    if (target.startsWith("/")) resolved = []
    pending = [...target.split("/").filter((p) => p !== ""), ...pending]
  }
  return `/${resolved.join("/")}`
}

/** Run a program of the unpacked packages through their own dynamic loader. */
const pinnedTool = (sysroot: string) =>
(
  program: string,
  args: ReadonlyArray<string>,
  options: { env?: Record<string, string>; stdin?: Uint8Array } = {},
) => {
  const path = resolveIn(sysroot, program) ?? fail(`no ${program} in the pinned packages`)
  return runBytes([
    `${sysroot}${LOADER}`,
    "--library-path",
    LIBRARY_DIRS.map((dir) => `${sysroot}${dir}`).join(":"),
    "--argv0",
    program.split("/").pop()!,
    `${sysroot}${path}`,
    ...args,
  ], options)
}

/** Unpack the pinned packages once per set of pins: one tree for the kernel, one for the rest. */
const unpackAll = async (pins: ReadonlyArray<Pin>, pinsHash: string) => {
  const kernelPin = pins.find((pin) => pinFor(pin, "linux-image-amd64"))!
  const sysroot = `${CACHE_DIR}/sysroot-${pinsHash.slice(0, 16)}`
  const kernelRoot = `${CACHE_DIR}/kernel-${kernelPin.sha256.slice(0, 16)}`
  const debs = new Map<string, string>()
  for (const pin of pins) debs.set(pin.name, await fetchDeb(pin, `${CACHE_DIR}/debs`))
  if (!(await exists(sysroot))) {
    const partial = `${sysroot}.partial`
    await Deno.remove(partial, { recursive: true }).catch(() => {})
    for (const pin of pins) if (pin !== kernelPin) await unpackDeb(debs.get(pin.name)!, partial)
    await Deno.rename(partial, sysroot)
  }
  if (!(await exists(kernelRoot))) {
    const partial = `${kernelRoot}.partial`
    await Deno.remove(partial, { recursive: true }).catch(() => {})
    await unpackDeb(debs.get(kernelPin.name)!, partial)
    await Deno.rename(partial, kernelRoot)
  }
  const kernelVersion = kernelPin.name.replace(/^linux-image-/, "")
  return { sysroot, kernelRoot, kernelVersion }
}

/** The entries of the initramfs, by path; parents are added when the archive is written. */
class Tree {
  readonly entries = new Map<string, CpioEntry>()
  add(entry: CpioEntry) {
    const existing = this.entries.get(entry.path)
    if (existing !== undefined && existing.kind !== "directory") {
      fail(`two files want ${entry.path} in the initramfs`)
    }
    this.entries.set(entry.path, entry)
  }
  file(path: string, data: Uint8Array, mode = 0o644) {
    this.add({ kind: "file", path, mode, data })
  }
  symlink(path: string, target: string) {
    this.add({ kind: "symlink", path, target })
  }
  /** All entries, with every missing parent directory added as 0755. */
  complete(): Array<CpioEntry> {
    const all = new Map(this.entries)
    for (const path of this.entries.keys()) {
      const parts = path.split("/")
      for (let depth = 1; depth < parts.length; depth++) {
        const parent = parts.slice(0, depth).join("/")
        if (!all.has(parent)) all.set(parent, { kind: "directory", path: parent, mode: 0o755 })
      }
    }
    return [...all.values()]
  }
}

/** Take the tools into usr/bin, and busybox for every other applet. */
const addTools = async (tree: Tree, sysroot: string): Promise<Array<string>> => {
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

/** Add the shared libraries that `programs` need, transitively; a missing one fails the build. */
const addLibraries = async (tree: Tree, sysroot: string, programs: ReadonlyArray<string>) => {
  const missing: Array<string> = []
  const seen = new Set<string>()
  const pending = [...programs]
  while (pending.length > 0) {
    const file = pending.pop()!
    const dependencies = elfDependencies(await Deno.readFile(file))
    if (dependencies === undefined) continue
    for (const soname of dependencies.needed) {
      if (seen.has(soname)) continue
      seen.add(soname)
      const found = LIBRARY_DIRS.map((dir) => resolveIn(sysroot, `${dir}/${soname}`))
        .find((path) => path !== undefined)
      if (found === undefined) {
        missing.push(`${file.slice(sysroot.length)} needs ${soname}`)
        continue
      }
      const mode = (await Deno.stat(`${sysroot}${found}`)).mode! & 0o7777
      tree.file(
        `usr/lib/x86_64-linux-gnu/${soname}`,
        await Deno.readFile(`${sysroot}${found}`),
        mode,
      )
      pending.push(`${sysroot}${found}`)
    }
  }
  if (missing.length > 0) {
    fail(
      `no pinned package provides these libraries (add it to PACKAGES):\n  ${missing.join("\n  ")}`,
    )
  }
}

/** Add the selected modules with a depmod index made for just them; returns the load order. */
const addModules = async (
  tree: Tree,
  kernelRoot: string,
  kernelVersion: string,
  tool: ReturnType<typeof pinnedTool>,
): Promise<ReadonlyArray<string>> => {
  const modulesDir = `${kernelRoot}/lib/modules/${kernelVersion}`
  if (!(await exists(`${modulesDir}/modules.dep`))) {
    await tool("/sbin/depmod", ["-b", kernelRoot, kernelVersion])
  }
  const modulesDep = await Deno.readTextFile(`${modulesDir}/modules.dep`)
  const modulesBuiltin = await Deno.readTextFile(`${modulesDir}/modules.builtin`)
  const boot = selectModules(BOOT_MODULES, modulesDep, modulesBuiltin)
  const all = selectModules([...BOOT_MODULES, ...ON_DEMAND_MODULES], modulesDep, modulesBuiltin)
  const staging = await Deno.makeTempDir({ prefix: "transient-modules-" })
  try {
    const staged = `${staging}/lib/modules/${kernelVersion}`
    for (const path of [...all.loadOrder, "modules.builtin", "modules.builtin.modinfo"]) {
      await Deno.mkdir(parentOf(`${staged}/${path}`), { recursive: true })
      await Deno.copyFile(`${modulesDir}/${path}`, `${staged}/${path}`)
    }
    await Deno.writeTextFile(`${staged}/modules.order`, all.loadOrder.join("\n") + "\n")
    await tool("/sbin/depmod", ["-b", staging, kernelVersion])
    for await (const path of walkFiles(staged)) {
      tree.file(
        `usr/lib/modules/${kernelVersion}/${path}`,
        await Deno.readFile(`${staged}/${path}`),
      )
    }
  } finally {
    await Deno.remove(staging, { recursive: true })
  }
  return boot.loadOrder
}

async function* walkFiles(dir: string, prefix = ""): AsyncGenerator<string> {
  const entries = [...Deno.readDirSync(`${dir}/${prefix}`)].sort((a, b) => a.name < b.name ? -1 : 1)
  for (const entry of entries) {
    const path = prefix === "" ? entry.name : `${prefix}/${entry.name}`
    if (entry.isDirectory) yield* walkFiles(dir, path)
    else yield path
  }
}

/** The agent's entry module and everything it imports, as paths relative to the repository. */
const agentSources = async (agent: string): Promise<Array<string>> => {
  if (!(await exists(agent))) {
    fail(`the agent ${agent} does not exist (give another one with --agent FILE)`)
  }
  const info = JSON.parse(
    await run([Deno.execPath(), "info", "--json", "--no-config", "--no-lock", agent]),
  ) as { modules: Array<{ specifier: string; error?: string }> }
  return info.modules.map((module) => {
    if (module.error !== undefined) {
      fail(`the agent cannot load ${module.specifier}: ${module.error}`)
    }
    if (!module.specifier.startsWith("file://")) {
      fail(`the agent imports ${module.specifier}; it may import only local files`)
    }
    const path = decodeURIComponent(new URL(module.specifier).pathname)
    if (!path.startsWith(`${REPO_DIR}/`)) fail(`the agent imports ${path}, outside the repository`)
    return path.slice(REPO_DIR.length + 1)
  }).sort()
}

/** The Linux x86_64 Deno the agent runs on: the one the npm `deno` package installed. */
const guestDeno = async (): Promise<string> => {
  for (const candidate of ["node_modules/@deno/linux-x64-glibc/deno", "node_modules/deno/deno"]) {
    const path = `${REPO_DIR}/${candidate}`
    const bytes = await Deno.open(path).then(async (file) => {
      const header = new Uint8Array(20)
      await file.read(header)
      file.close()
      return header
    }).catch(() => undefined)
    // An x86_64 ELF executable (e_machine 62), whatever the host is.
    if (bytes !== undefined && bytes[0] === 0x7f && bytes[18] === 62) return path
  }
  return fail("no Linux x86_64 Deno in node_modules (run `npm ci`)")
}

/** The runtime tree: bin/deno and app/<repository paths of the agent's modules>. */
const runtimeFiles = (deno: string, agentFiles: ReadonlyArray<string>) => [
  { path: "bin/deno", source: deno, mode: 0o755 },
  ...agentFiles.map((path) => ({
    path: `app/${path}`,
    source: `${REPO_DIR}/${path}`,
    mode: 0o644,
  })),
]

/** A read-only ext4 image of `files`, identical for identical inputs. */
const makeRuntimeImage = async (
  output: string,
  files: ReadonlyArray<{ path: string; source: string; mode: number }>,
  sysroot: string,
  tool: ReturnType<typeof pinnedTool>,
) => {
  const staging = await Deno.makeTempDir({ prefix: "transient-runtime-" })
  try {
    let bytes = 0
    const dirs = new Set<string>([""])
    for (const file of files) {
      await Deno.mkdir(parentOf(`${staging}/${file.path}`), { recursive: true })
      await Deno.copyFile(file.source, `${staging}/${file.path}`)
      await Deno.chmod(`${staging}/${file.path}`, file.mode)
      bytes += (await Deno.stat(file.source)).size
      const parts = file.path.split("/")
      for (let depth = 1; depth < parts.length; depth++) dirs.add(parts.slice(0, depth).join("/"))
    }
    const all = [...dirs, ...files.map((file) => file.path)].sort()
    for (const path of all) {
      await Deno.chmod(
        `${staging}/${path}`,
        path === "" || dirs.has(path) ? 0o755 : files.find((f) => f.path === path)!.mode,
      )
    }
    const sizeMiB = Math.ceil((bytes * 1.05) / 2 ** 20) + 8
    const env = {
      E2FSPROGS_FAKE_TIME: String(FIXED_TIME),
      MKE2FS_CONFIG: `${sysroot}/etc/mke2fs.conf`,
    }
    await Deno.remove(output).catch(() => {})
    await tool("/sbin/mke2fs", [
      "-q",
      "-F",
      "-t",
      "ext4",
      "-O",
      "^has_journal",
      "-m",
      "0",
      "-L",
      RUNTIME_LABEL,
      "-U",
      RUNTIME_UUID,
      "-E",
      `hash_seed=${RUNTIME_HASH_SEED},root_owner=0:0`,
      "-d",
      staging,
      output,
      `${sizeMiB}M`,
    ], { env })
    // mke2fs -d copies the staged files' access and change times; pin every time.
    const script = all.flatMap((path) =>
      ["atime", "ctime", "mtime", "crtime"].map((field) =>
        `sif "/${path}" ${field} ${FIXED_TIME}`
      )
    ).join("\n") + "\n"
    const scriptFile = `${staging}.debugfs`
    await Deno.writeTextFile(scriptFile, script)
    try {
      await tool("/sbin/debugfs", ["-w", "-f", scriptFile, output], { env })
    } finally {
      await Deno.remove(scriptFile)
    }
  } finally {
    await Deno.remove(staging, { recursive: true })
  }
}

/**
 * The uncompressed kernel, from the xz payload of the bzImage. QEMU boots it directly through
 * its PVH entry point, which spares the kernel's self-decompression (seconds under TCG).
 */
const extractVmlinux = async (
  vmlinuz: Uint8Array,
  tool: ReturnType<typeof pinnedTool>,
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
const hasPvhEntry = (elf: Uint8Array): boolean => {
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

interface Manifest {
  readonly inputs: string
  readonly pins: string
  readonly kernel: string
  readonly deno: string
  readonly agent: ReadonlyArray<string>
  readonly packages: Record<string, string>
  readonly artifacts: Record<string, { readonly sha256: string; readonly size: number }>
  readonly options: { readonly denoInInitramfs: boolean; readonly compression: string }
}

const ARTIFACT_NAMES = ["vmlinux", "initramfs.img", "runtime.img"] as const

/** Whether `out` holds artifacts made from exactly these inputs, unaltered since. */
const upToDate = async (out: string, inputs: string): Promise<boolean> => {
  try {
    const manifest = JSON.parse(await Deno.readTextFile(`${out}/manifest.json`)) as Manifest
    if (manifest.inputs !== inputs) return false
    for (const [name, { sha256 }] of Object.entries(manifest.artifacts)) {
      if ((await sha256Hex(await Deno.readFile(`${out}/${name}`))) !== sha256) return false
    }
    return true
  } catch {
    return false
  }
}

const build = async (options: Options) => {
  const pinsText = await Deno.readTextFile(PINS_FILE)
  const pins = await readPins(PINS_FILE, PACKAGES)
  const pinsHash = await sha256Hex(new TextEncoder().encode(pinsText))
  const deno = await guestDeno()
  const agentFiles = await agentSources(options.agent)
  const recipeFiles = [
    "guest/build.ts",
    "guest/init",
    ...[...Deno.readDirSync(`${GUEST_DIR}/recipe`)].map((entry) => `guest/recipe/${entry.name}`),
  ].sort()
  const inputHashes = [
    `pins ${pinsHash}`,
    `options ${JSON.stringify(options, ["denoInInitramfs", "compression"])}`,
  ]
  for (const path of [...recipeFiles, ...agentFiles.map((file) => `agent:${file}`)]) {
    const file = path.replace(/^agent:/, "")
    inputHashes.push(`${path} ${await sha256Hex(await Deno.readFile(`${REPO_DIR}/${file}`))}`)
  }
  const denoHash = await sha256Hex(await Deno.readFile(deno))
  inputHashes.push(`deno ${denoHash}`)
  const inputs = await sha256Hex(new TextEncoder().encode(inputHashes.join("\n")))
  if (await upToDate(options.out, inputs)) {
    console.log(`Guest artifacts in ${options.out} are up to date (pins ${pinsHash.slice(0, 12)})`)
    return
  }

  const started = performance.now()
  const { sysroot, kernelRoot, kernelVersion } = await unpackAll(pins.packages, pinsHash)
  const tool = pinnedTool(sysroot)
  const tree = new Tree()
  for (
    const [link, target] of [
      ["bin", "usr/bin"],
      ["sbin", "usr/bin"],
      ["usr/sbin", "bin"],
      ["lib", "usr/lib"],
      ["lib64", "usr/lib64"],
    ] as const
  ) tree.symlink(link, target)
  tree.symlink("usr/lib64/ld-linux-x86-64.so.2", "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
  for (
    const dir of ["dev", "proc", "sys", "run", "tmp", "mnt", "context", "root", "opt/transient"]
  ) {
    tree.add({ kind: "directory", path: dir, mode: dir === "tmp" ? 0o1777 : 0o755 })
  }
  tree.add({ kind: "char", path: "dev/console", mode: 0o600, major: 5, minor: 1 })
  tree.add({ kind: "char", path: "dev/null", mode: 0o666, major: 1, minor: 3 })

  const programs = await addTools(tree, sysroot)
  await addLibraries(tree, sysroot, [...programs, deno])
  const loadOrder = await addModules(tree, kernelRoot, kernelVersion, tool)

  const text = (value: string) => new TextEncoder().encode(value)
  tree.file("init", await Deno.readFile(`${GUEST_DIR}/init`), 0o755)
  tree.file("etc/transient/modules", text(loadOrder.join("\n") + "\n"))
  const agentEntry = agentFiles.find((path) => `${REPO_DIR}/${path}` === options.agent)!
  tree.file(
    "etc/transient/build.env",
    text(`KERNEL_VERSION=${kernelVersion}\nAGENT=/opt/transient/app/${agentEntry}\n`),
  )
  tree.file("etc/passwd", text("root:x:0:0:root:/root:/bin/sh\n"))
  tree.file("etc/group", text("root:x:0:\n"))
  tree.file("etc/mke2fs.conf", await Deno.readFile(`${sysroot}/etc/mke2fs.conf`))
  // No udev in the helper VM: LVM makes its own device nodes and waits for no one.
  tree.file(
    "etc/lvm/lvm.conf",
    text(
      "activation {\n  udev_sync = 0\n  udev_rules = 0\n}\n" +
        "devices {\n  obtain_device_list_from_udev = 0\n}\n",
    ),
  )

  const runtime = runtimeFiles(deno, agentFiles)
  await Deno.mkdir(options.out, { recursive: true })
  for (const name of ARTIFACT_NAMES) await Deno.remove(`${options.out}/${name}`).catch(() => {})
  if (options.denoInInitramfs) {
    for (const file of runtime) {
      tree.file(`opt/transient/${file.path}`, await Deno.readFile(file.source), file.mode)
    }
  } else {
    await makeRuntimeImage(`${options.out}/runtime.img`, runtime, sysroot, tool)
  }

  const archive = writeCpio(tree.complete())
  const compressed = options.compression === "none"
    ? archive
    : options.compression === "zstd"
    ? await tool("/usr/bin/zstd", ["-q", "-19", "-T1", "-c", "-"], { stdin: archive })
    : await tool("/bin/gzip", ["-n", "-9", "-c"], { stdin: archive })
  await Deno.writeFile(`${options.out}/initramfs.img`, compressed)
  const vmlinuz = await Deno.readFile(`${kernelRoot}/boot/vmlinuz-${kernelVersion}`)
  await Deno.writeFile(`${options.out}/vmlinux`, await extractVmlinux(vmlinuz, tool))

  const artifacts: Record<string, { sha256: string; size: number }> = {}
  for (const name of ARTIFACT_NAMES) {
    if (!(await exists(`${options.out}/${name}`))) continue
    const bytes = await Deno.readFile(`${options.out}/${name}`)
    artifacts[name] = { sha256: await sha256Hex(bytes), size: bytes.length }
  }
  const manifest: Manifest = {
    inputs,
    pins: pinsHash,
    kernel: kernelVersion,
    deno: (await run([deno, "--version"])).split("\n")[0]!,
    agent: agentFiles,
    packages: Object.fromEntries(pins.packages.map((pin) => [pin.name, pin.version])),
    artifacts,
    options: { denoInInitramfs: options.denoInInitramfs, compression: options.compression },
  }
  await Deno.writeTextFile(`${options.out}/manifest.json`, JSON.stringify(manifest, null, 2) + "\n")
  const seconds = ((performance.now() - started) / 1000).toFixed(1)
  const sizes = Object.entries(artifacts)
    .map(([name, { size }]) => `${name} ${(size / 2 ** 20).toFixed(1)} MiB`).join(", ")
  console.log(`Built guest artifacts in ${options.out} in ${seconds} s: ${sizes}`)
}

const updatePins = async () => {
  const before = await Deno.readTextFile(PINS_FILE).then((text) => JSON.parse(text).packages)
    .catch(() => []) as ReadonlyArray<Pin>
  const pins = await resolvePins(PACKAGES)
  await Deno.writeTextFile(PINS_FILE, JSON.stringify(pins, null, 2) + "\n")
  const changed = pins.packages.filter((pin) =>
    !before.some((old) => old.name === pin.name && old.version === pin.version)
  )
  console.log(
    changed.length === 0
      ? `${PINS_FILE}: all ${pins.packages.length} pins unchanged`
      : `${PINS_FILE}: ${changed.map((pin) => `${pin.name} ${pin.version}`).join(", ")}`,
  )
}

if (import.meta.main) {
  try {
    const options = parseOptions(Deno.args)
    await (options.updatePins ? updatePins() : build(options))
  } catch (error) {
    if (!(error instanceof RecipeError)) throw error
    console.error(`deno task guest: ${error.message}`)
    Deno.exit(1)
  }
}
