/**
 * The command each GuestOperation runs in the helper VM: an argv for the agent. Pure, so the
 * QEMU layer executes exactly what `build --dry-run` prints.
 *
 * Shell that runs in the guest lives in guest/scripts/*.sh, shipped in the initramfs at
 * GUEST_SCRIPT_DIR. User text (RUN commands, paths, mkfs options, the sfdisk table) only ever
 * travels as separate argv elements, which the scripts read as "$1", "$2", ...
 */
import type { Filesystem } from "../imagefile/ast.ts"
import { AGENT_BUILTIN } from "./builtins.ts"
import type { DiskLayout, MountPoint, PartitionLayout, PartitionType } from "../plan.ts"
import {
  ext4HashSeed,
  filesystemUuid,
  gptDiskGuid,
  gptPartitionGuid,
  mbrDiskId,
  vfatVolumeId,
} from "../reproducible_ids.ts"
import { GUEST_SCRIPT_DIR } from "./manifest.ts"
import type { GuestOperation, GuestSource } from "./operation.ts"

export { GUEST_SCRIPT_DIR }

/** Where the image's root filesystem is mounted in the guest. */
export const BUILD_ROOT = "/mnt/root"
/** Where the guest mounts BUILD_DIR (read-only; guest/init). */
export const CONTEXT_DIR = "/context"
/** The working disk: the one SCSI disk (virtio-scsi), named as on most machines. */
export const TARGET_DISK = "/dev/sda"

/** The PATH of RUN and INSPECT, as Docker sets it. */
export const CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/** One process the agent starts in the guest. */
export interface GuestCommand {
  readonly argv: readonly [string, ...Array<string>]
  /** Environment variables for the process, on top of the agent's. */
  readonly env?: Readonly<Record<string, string>>
}

/** `guest/scripts/NAME` as the guest runs it. */
export const script = (name: string): string => `${GUEST_SCRIPT_DIR}/${name}`

// ---------------------------------------------------------------------------------------------
// Partitions

const GPT_TYPES: Record<PartitionType, string> = {
  linux: "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
  efi: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
  bios_grub: "21686148-6449-6E6F-744E-656564454649",
  swap: "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
}

/** MBR has no BIOS-boot type; validation refuses `bios_grub` on MBR, so it never gets here. */
const MBR_TYPES: Record<PartitionType, string> = {
  linux: "83",
  efi: "ef",
  bios_grub: "83",
  swap: "82",
}

const partitionLine = (
  table: DiskLayout["table"],
  part: PartitionLayout,
  seed: string | undefined,
): string => {
  const fields = [`start=${part.startSector}`, `size=${part.sizeSectors}`]
  if (table === "gpt") {
    fields.push(`type=${GPT_TYPES[part.type]}`)
    if (seed !== undefined) fields.push(`uuid=${gptPartitionGuid(seed, part.number)}`)
    if (part.bootable) fields.push(`attrs="LegacyBIOSBootable"`)
  } else {
    fields.push(`type=${MBR_TYPES[part.type]}`)
    if (part.bootable) fields.push("bootable")
  }
  return fields.join(", ")
}

/**
 * The sfdisk script that writes `layout`: explicit sectors, nothing left to sfdisk's defaults.
 * With a `seed` (a reproducible build), the disk's and the partitions' identifiers are derived
 * from it instead of drawn at random.
 */
export const sfdiskScript = (layout: DiskLayout, seed?: string): string =>
  [
    `label: ${layout.table === "gpt" ? "gpt" : "dos"}`,
    ...(seed === undefined
      ? []
      : [`label-id: ${layout.table === "gpt" ? gptDiskGuid(seed) : mbrDiskId(seed)}`]),
    "unit: sectors",
    "",
    ...[...layout.partitions].sort((a, b) => a.number - b.number)
      .map((part) => partitionLine(layout.table, part, seed)),
    "",
  ].join("\n")

/** The guest device of partition `n` of the working disk. */
export const partitionDevice = (n: number): string => `${TARGET_DISK}${n}`

// ---------------------------------------------------------------------------------------------
// Filesystems

/**
 * `mkfs` for a fresh partition. The force flags make mkfs.ext4 and mkfs.xfs overwrite whatever
 * signature an old table left there instead of refusing or asking (there is no terminal). With
 * `ids` (a reproducible build's seed and the partition's number), the filesystem's identifiers
 * are derived rather than random; the Imagefile's OPTIONS come after them, so an id it sets wins.
 */
export const mkfsArgv = (
  device: string,
  fs: Filesystem,
  options: ReadonlyArray<string>,
  ids?: { readonly seed: string; readonly partition: number },
): readonly [string, ...Array<string>] => {
  const uuid = ids === undefined ? undefined : filesystemUuid(ids.seed, ids.partition)
  switch (fs) {
    case "ext2":
    case "ext3":
    case "ext4": {
      const derived = ids === undefined
        ? []
        : ["-U", uuid!, "-E", `hash_seed=${ext4HashSeed(ids.seed, ids.partition)}`]
      return [`mkfs.${fs}`, "-F", ...derived, ...options, device]
    }
    case "xfs":
      return [
        "mkfs.xfs",
        "-f",
        ...(uuid === undefined ? [] : ["-m", `uuid=${uuid}`]),
        ...options,
        device,
      ]
    case "vfat":
      return [
        "mkfs.vfat",
        ...(ids === undefined ? [] : ["-i", vfatVolumeId(ids.seed, ids.partition)]),
        ...options,
        device,
      ]
    case "swap":
      return ["mkswap", ...(uuid === undefined ? [] : ["-U", uuid]), ...options, device]
  }
}

/** `path` (absolute in the image) as a path in the guest. */
export const inRoot = (path: string): string => {
  const normal = path.split("/").filter((part) => part !== "" && part !== ".").join("/")
  return normal === "" ? BUILD_ROOT : `${BUILD_ROOT}/${normal}`
}

const mountArgs = (mounts: ReadonlyArray<MountPoint>): ReadonlyArray<string> =>
  mounts.flatMap((mount) => [partitionDevice(mount.partition), inRoot(mount.path)])

// ---------------------------------------------------------------------------------------------
// The chroot

/** The API filesystems of the chroot, in mount order, as arch-chroot sets them up. */
export const CHROOT_MOUNTS: ReadonlyArray<
  {
    readonly path: string
    readonly type: string
    readonly source: string
    readonly options: string
  }
> = [
  { path: "/dev", type: "devtmpfs", source: "udev", options: "mode=0755,nosuid" },
  { path: "/dev/pts", type: "devpts", source: "devpts", options: "mode=0620,gid=5,nosuid,noexec" },
  { path: "/dev/shm", type: "tmpfs", source: "shm", options: "mode=1777,nosuid,nodev" },
  { path: "/proc", type: "proc", source: "proc", options: "nosuid,noexec,nodev" },
  { path: "/sys", type: "sysfs", source: "sys", options: "nosuid,noexec,nodev,ro" },
  { path: "/run", type: "tmpfs", source: "run", options: "mode=0755,nosuid,nodev" },
  { path: "/tmp", type: "tmpfs", source: "tmp", options: "mode=1777,strictatime,nodev,nosuid" },
]

/**
 * RUN and INSPECT run chrooted into the image, each in its own PID namespace so stray daemons
 * die with the step. `--mount-proc` gives the namespace its own /proc, mounted on the chroot's
 * /proc in a private mount namespace: `ps` inside sees the step's processes only, and the
 * chroot's own /proc mount is left as it is.
 */
export const CHROOT_PREFIX: readonly [string, ...Array<string>] = [
  "unshare",
  "--fork",
  "--pid",
  // Killing unshare (an interrupted RUN) SIGKILLs the namespace's init, which takes down every
  // process of the RUN with it.
  "--kill-child",
  `--mount-proc=${inRoot("/proc")}`,
  "chroot",
  BUILD_ROOT,
]

/** RUN: `/bin/sh -c COMMAND` as root in the image. */
export const runArgv = (command: string): readonly [string, ...Array<string>] => [
  ...CHROOT_PREFIX,
  "/bin/sh",
  "-c",
  command,
]

export const RUN_ENV: Readonly<Record<string, string>> = {
  PATH: CHROOT_PATH,
  HOME: "/root",
  LANG: "C.UTF-8",
}

// ---------------------------------------------------------------------------------------------
// COPY and ADD

/** `source` as the guest sees it, under its read-only mount of BUILD_DIR. */
export const contextPath = (source: Pick<GuestSource, "path">): string =>
  source.path === "." || source.path === "" ? CONTEXT_DIR : `${CONTEXT_DIR}/${source.path}`

/** Whether COPY's destination is a directory: several sources, a trailing `/`, or a directory. */
const copiesIntoDirectory = (
  sources: ReadonlyArray<GuestSource>,
  destination: string,
): boolean =>
  sources.length !== 1 || destination.endsWith("/") || destination === "." ||
  sources.every((source) => source.kind === "directory")

/**
 * Extraction keeps what a root filesystem needs: numeric owners, modes, xattrs (capabilities,
 * SELinux labels), and the image's symlinked directories (merged /usr). Compression is
 * recognised by GNU tar from the content: gzip, bzip2, xz, zstd.
 */
export const TAR_EXTRACT_OPTIONS: ReadonlyArray<string> = [
  "--numeric-owner",
  "--same-owner",
  "--preserve-permissions",
  "--xattrs",
  "--xattrs-include=*",
  "--keep-directory-symlink",
]

const copyCommand = (sources: ReadonlyArray<GuestSource>, destination: string): GuestCommand => ({
  argv: [
    script("copy-in.sh"),
    copiesIntoDirectory(sources, destination) ? "dir" : "file",
    inRoot(destination),
    ...sources.map(contextPath),
  ],
})

// ---------------------------------------------------------------------------------------------

/** The command that performs `operation` in the guest. */
export const commandFor = (operation: GuestOperation): GuestCommand => {
  switch (operation._tag) {
    case "PartitionDisk":
      return {
        argv: [
          script("partition.sh"),
          TARGET_DISK,
          sfdiskScript(operation.layout),
          ...operation.layout.partitions.map((part) => partitionDevice(part.number)),
        ],
      }
    case "Format":
      return {
        argv: mkfsArgv(partitionDevice(operation.partition), operation.fs, operation.options),
      }
    case "MountPartitions":
      return { argv: [script("mount-partitions.sh"), ...mountArgs(operation.mounts)] }
    case "DiscoverRoot":
      return { argv: [script("discover-root.sh"), BUILD_ROOT, TARGET_DISK] }
    case "PrepareChroot":
      return {
        argv: [
          script("prepare-chroot.sh"),
          BUILD_ROOT,
          TARGET_DISK,
          ...CHROOT_MOUNTS.flatMap((
            mount,
          ) => [mount.path, mount.type, mount.options, mount.source]),
        ],
      }
    case "CopyIn":
      return copyCommand(operation.sources, operation.destination)
    case "Extract": {
      // A directory is copied as COPY copies it; a file is extracted if it is an archive.
      if (operation.source.kind === "directory") {
        return copyCommand([operation.source], operation.destination)
      }
      return {
        argv: [
          script("extract.sh"),
          copiesIntoDirectory([operation.source], operation.destination) ? "dir" : "file",
          contextPath(operation.source),
          inRoot(operation.destination),
          ...TAR_EXTRACT_OPTIONS,
        ],
      }
    }
    case "ApplyLayer":
      return { argv: [AGENT_BUILTIN.applyLayer, inRoot(operation.destination)] }
    case "Run":
      return { argv: runArgv(operation.command), env: RUN_ENV }
    case "Shell":
      return {
        argv: [
          script("shell.sh"),
          operation.console,
          String(operation.rows),
          String(operation.columns),
          ...CHROOT_PREFIX,
          "/bin/sh",
          "-l",
        ],
        env: { ...RUN_ENV, TERM: "xterm-256color", PS1: "(transient) \\w # " },
      }
    case "Sync":
      return { argv: ["sync"] }
    case "Freeze":
      return { argv: [AGENT_BUILTIN.freeze, BUILD_ROOT] }
    case "Thaw":
      return { argv: [AGENT_BUILTIN.thaw] }
    case "Release":
      return { argv: [script("release.sh"), BUILD_ROOT] }
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/

/** A word as a POSIX shell would need it written. */
export const quote = (word: string): string =>
  SAFE.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`

export const quoteArgv = (argv: ReadonlyArray<string>): string => argv.map(quote).join(" ")

/** A command as a shell line that runs exactly it: its environment, then its quoted argv. */
export const renderCommand = (command: GuestCommand): string =>
  [
    ...Object.entries(command.env ?? {}).map(([name, value]) => `${name}=${quote(value)}`),
    quoteArgv(command.argv),
  ].join(" ")
