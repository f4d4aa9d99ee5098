/**
 * Guest commands: the typed VmSession operations as the argv arrays the helper VM runs through
 * its agent. Pure, so the QEMU layer executes exactly what `build --dry-run` prints.
 *
 * User text (RUN commands, paths, mkfs options, the sfdisk script) only ever travels as separate
 * argv elements; the few shell scripts here are constants that read it from "$1", "$2", ...
 */
import type { Filesystem } from "./imagefile/ast.ts"
import type { DiskLayout, MountPoint, PartitionLayout, PartitionType } from "./plan.ts"

/** Where the image's root filesystem is mounted in the guest. */
export const BUILD_ROOT = "/mnt/root"
/** Where the guest mounts BUILD_DIR (read-only; guest/init). */
export const CONTEXT_DIR = "/context"
/** The working disk: the first virtio disk. */
export const TARGET_DISK = "/dev/vda"

/**
 * The guest has busybox and the full tools side by side, and busybox's ash would run its own
 * applets before PATH: scripts name each tool by path (busybox tar, mount or cp lack what most
 * steps need), or call busybox explicitly where its static applet is enough and faster.
 */
const TAR = "/usr/bin/tar"
const MOUNT = "/usr/bin/mount"
const UMOUNT = "/usr/bin/umount"
const BLKID = "/usr/bin/blkid"
const CP = "/usr/bin/cp"
const BLOCKDEV = "/usr/bin/blockdev"
const BUSYBOX_MOUNT = "busybox mount"

/** The PATH of RUN and INSPECT, as Docker sets it. */
export const CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/** One process the agent starts in the guest. */
export interface GuestCommand {
  readonly argv: ReadonlyArray<string>
  /** Environment variables for the process, on top of the agent's. */
  readonly env?: Readonly<Record<string, string>>
  /**
   * How `describe` shows a command whose argv is a fixed script: the script's gist in shell
   * syntax (argv of scripts are exact but unreadable).
   */
  readonly summary?: string
}

/** A source of COPY/ADD, as BuildContext resolved it. */
export interface GuestSource {
  /** Relative to BUILD_DIR, `/`-separated (`.` for BUILD_DIR itself). */
  readonly path: string
  readonly kind: "file" | "directory" | "symlink"
}

/** The operations of a VmSession, as data. */
export type GuestOperation =
  | { readonly _tag: "PartitionDisk"; readonly layout: DiskLayout }
  | {
    readonly _tag: "Format"
    readonly partition: number
    readonly fs: Filesystem
    readonly options: ReadonlyArray<string>
  }
  | { readonly _tag: "MountPartitions"; readonly mounts: ReadonlyArray<MountPoint> }
  | { readonly _tag: "DiscoverRoot" }
  | { readonly _tag: "PrepareChroot" }
  | {
    readonly _tag: "CopyIn"
    readonly sources: ReadonlyArray<GuestSource>
    readonly destination: string
  }
  | { readonly _tag: "Extract"; readonly source: GuestSource; readonly destination: string }
  | { readonly _tag: "Run"; readonly command: string }
  | {
    readonly _tag: "Shell"
    readonly console: string
    readonly rows: number
    readonly columns: number
  }
  | { readonly _tag: "Sync" }
  | { readonly _tag: "Release" }

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

const partitionLine = (table: DiskLayout["table"], part: PartitionLayout): string => {
  const fields = [`start=${part.startSector}`, `size=${part.sizeSectors}`]
  if (table === "gpt") {
    fields.push(`type=${GPT_TYPES[part.type]}`)
    if (part.bootable) fields.push(`attrs="LegacyBIOSBootable"`)
  } else {
    fields.push(`type=${MBR_TYPES[part.type]}`)
    if (part.bootable) fields.push("bootable")
  }
  return fields.join(", ")
}

/** The sfdisk script that writes `layout`: explicit sectors, nothing left to sfdisk's defaults. */
export const sfdiskScript = (layout: DiskLayout): string =>
  [
    `label: ${layout.table === "gpt" ? "gpt" : "dos"}`,
    "unit: sectors",
    "",
    ...[...layout.partitions].sort((a, b) => a.number - b.number)
      .map((part) => partitionLine(layout.table, part)),
    "",
  ].join("\n")

/** The guest device of partition `n` of the working disk. */
export const partitionDevice = (n: number): string => `${TARGET_DISK}${n}`

// sfdisk reads its script on stdin; the script arrives as "$1". The kernel then re-reads the
// table (one BLKRRPART: sfdisk's own way of telling it costs a quarter of a second more under
// TCG), and the partition nodes appear on devtmpfs shortly after.
const PARTITION_SCRIPT = `set -e
disk=$1 script=$2; shift 2
printf '%s' "$script" | sfdisk --quiet --wipe always --wipe-partitions always --no-tell-kernel "$disk"
${BLOCKDEV} --rereadpt "$disk"
for dev; do
  n=0
  while [ ! -b "$dev" ]; do
    n=$((n + 1)); [ "$n" -le 50 ] || { echo "$dev did not appear" >&2; exit 1; }
    sleep 0.1
  done
done`

export const partitionCommands = (layout: DiskLayout): ReadonlyArray<GuestCommand> => {
  const script = sfdiskScript(layout)
  const devices = layout.partitions.map((part) => partitionDevice(part.number))
  return [{
    argv: ["/bin/sh", "-c", PARTITION_SCRIPT, "sh", TARGET_DISK, script, ...devices],
    summary: [
      `sfdisk --wipe always --wipe-partitions always --no-tell-kernel ${TARGET_DISK} <<EOF`,
      ...script.trimEnd().split("\n"),
      "EOF",
      `blockdev --rereadpt ${TARGET_DISK}`,
    ].join("\n"),
  }]
}

// ---------------------------------------------------------------------------------------------
// Filesystems

/**
 * `mkfs` for a fresh partition. The force flags make mkfs.ext4 and mkfs.xfs overwrite whatever
 * signature an old table left there instead of refusing or asking (there is no terminal).
 */
export const mkfsArgv = (
  device: string,
  fs: Filesystem,
  options: ReadonlyArray<string>,
): ReadonlyArray<string> => {
  switch (fs) {
    case "ext2":
    case "ext3":
    case "ext4":
      return [`mkfs.${fs}`, "-F", ...options, device]
    case "xfs":
      return ["mkfs.xfs", "-f", ...options, device]
    case "vfat":
      return ["mkfs.vfat", ...options, device]
    case "swap":
      return ["mkswap", ...options, device]
  }
}

export const formatCommands = (
  request: {
    readonly partition: number
    readonly fs: Filesystem
    readonly options: ReadonlyArray<string>
  },
): ReadonlyArray<GuestCommand> => [{
  argv: mkfsArgv(partitionDevice(request.partition), request.fs, request.options),
}]

/** `path` (absolute in the image) as a path in the guest. */
export const inRoot = (path: string): string => {
  const normal = path.split("/").filter((part) => part !== "" && part !== ".").join("/")
  return normal === "" ? BUILD_ROOT : `${BUILD_ROOT}/${normal}`
}

/** Mount points in the order given; each mount point is created first (in its parent fs). */
export const mountCommands = (mounts: ReadonlyArray<MountPoint>): ReadonlyArray<GuestCommand> =>
  mounts.flatMap((mount) => [
    { argv: ["mkdir", "-p", inRoot(mount.path)] },
    { argv: ["mount", partitionDevice(mount.partition), inRoot(mount.path)] },
  ])

// ---------------------------------------------------------------------------------------------
// Root discovery (FROM <image>)

// Try every filesystem blkid sees (after activating LVM) until one holds /etc/fstab, then mount
// the others as that fstab says. The fstab is read here rather than by `chroot mount -a`, which
// would need the image's own mount and a populated /dev in the chroot.
const DISCOVER_SCRIPT = `root=$1
mkdir -p "$root"
vgchange -ay >/dev/null 2>&1 || true
found=
for dev in $(${BLKID} -o device); do
  case "$(${BLKID} -o value -s TYPE "$dev")" in
    swap|LVM2_member|crypto_LUKS|iso9660|squashfs|"") continue ;;
  esac
  # The helper VM's own disks are mounted already.
  grep -q "^$dev " /proc/mounts && continue
  ${MOUNT} "$dev" "$root" 2>/dev/null || continue
  if [ -f "$root/etc/fstab" ]; then found=$dev; break; fi
  ${UMOUNT} "$root"
done
if [ -z "$found" ]; then
  echo "no filesystem of the image holds /etc/fstab" >&2
  exit 1
fi
echo "root filesystem: $found"
status=0
while read -r spec target type options rest; do
  case "$spec" in ""|"#"*) continue ;; esac
  case "$target" in /) continue ;; /*) ;; *) continue ;; esac
  case "$type" in
    swap|proc|sysfs|devpts|devtmpfs|tmpfs|nfs|nfs4|cifs|smbfs|autofs|none) continue ;;
  esac
  case ",$options," in *,noauto,*|*,bind,*) continue ;; esac
  echo "mount $spec $target"
  if ! ${MOUNT} -t "$type" -o "$options" "$spec" "$root$target"; then
    case ",$options," in *,nofail,*) ;; *) status=1 ;; esac
  fi
done < "$root/etc/fstab"
exit $status`

export const discoverRootCommands = (): ReadonlyArray<GuestCommand> => [{
  argv: ["/bin/sh", "-c", DISCOVER_SCRIPT, "sh", BUILD_ROOT],
  summary: [
    "vgchange -ay",
    `mount the filesystem (of blkid -o device) that holds /etc/fstab at ${BUILD_ROOT}`,
    `mount the other filesystems of ${BUILD_ROOT}/etc/fstab below ${BUILD_ROOT}`,
  ].join("\n"),
}]

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

// The guest's resolv.conf is bound over the image's, following the image's symlinks inside the
// build root (often into /run, which is a fresh tmpfs here). A file created for the occasion is
// recorded so that releasing the chroot removes it again.
const RESOLV_SCRIPT = `root=$1
[ -f /etc/resolv.conf ] || exit 0
p=/etc/resolv.conf n=0
while [ -L "$root$p" ] && [ "$n" -lt 16 ]; do
  t=$(readlink "$root$p")
  case "$t" in /*) p=$t ;; *) p=\${p%/*}/$t ;; esac
  n=$((n + 1))
done
if [ ! -e "$root$p" ]; then
  mkdir -p "$(dirname "$root$p")" && : > "$root$p" && echo "$root$p" > /run/transient-resolv
fi
${BUSYBOX_MOUNT} --bind /etc/resolv.conf "$root$p"`

// Every API filesystem, then resolv.conf, in one guest command: each agent round trip costs
// about 80 ms under TCG, and there are fifteen steps. These fixed mounts need nothing beyond
// busybox's static mount, which under TCG spares 50 ms an exec over util-linux's (libmount,
// libselinux, libpcre2, ... relocated every time). Arguments: the build root, then
// path/type/options/source for each mount.
const CHROOT_SCRIPT = `root=$1
shift
while [ $# -ge 4 ]; do
  mkdir -p "$root$1" && ${BUSYBOX_MOUNT} -t "$2" -o "$3" "$4" "$root$1" || exit 1
  shift 4
done
${RESOLV_SCRIPT.replace("root=$1\n", "")}`

export const prepareChrootCommands = (): ReadonlyArray<GuestCommand> => [{
  argv: [
    "/bin/sh",
    "-c",
    CHROOT_SCRIPT,
    "sh",
    BUILD_ROOT,
    ...CHROOT_MOUNTS.flatMap((mount) => [mount.path, mount.type, mount.options, mount.source]),
  ],
  summary: [
    ...CHROOT_MOUNTS.flatMap((mount) => [
      quoteArgv(["mkdir", "-p", inRoot(mount.path)]),
      quoteArgv(["mount", "-t", mount.type, "-o", mount.options, mount.source, inRoot(mount.path)]),
    ]),
    `mount --bind /etc/resolv.conf ${inRoot("/etc/resolv.conf")}`,
  ].join("\n"),
}]

/**
 * RUN and INSPECT run chrooted into the image, each in its own PID namespace so stray daemons
 * die with the step. `--mount-proc` gives the namespace its own /proc, mounted on the chroot's
 * /proc in a private mount namespace: `ps` inside sees the step's processes only, and the
 * chroot's own /proc mount is left as it is.
 */
export const CHROOT_PREFIX: ReadonlyArray<string> = [
  "unshare",
  "--fork",
  "--pid",
  `--mount-proc=${inRoot("/proc")}`,
  "chroot",
  BUILD_ROOT,
]

/** RUN: `/bin/sh -c COMMAND` as root in the image. */
export const runArgv = (command: string): ReadonlyArray<string> => [
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

export const runCommand = (command: string): GuestCommand => ({
  argv: runArgv(command),
  env: RUN_ENV,
})

// The shell gets the guest terminal "$1" as its controlling terminal (`setsid -c` takes it from
// stdin), sized as the user's terminal ("$2" rows, "$3" columns). setsid runs in a child of this
// shell, which is no process-group leader, so it does not fork again and the shell waits for it.
const SHELL_SCRIPT = `tty=$1 rows=$2 cols=$3; shift 3
stty -F "$tty" rows "$rows" cols "$cols" 2>/dev/null || true
setsid -c "$@" <"$tty" >"$tty" 2>&1`

/** INSPECT: an interactive login shell in the image, on the guest terminal `console`. */
export const shellCommand = (
  request: { readonly console: string; readonly rows: number; readonly columns: number },
): GuestCommand => ({
  argv: [
    "/bin/sh",
    "-c",
    SHELL_SCRIPT,
    "sh",
    request.console,
    String(request.rows),
    String(request.columns),
    ...CHROOT_PREFIX,
    "/bin/sh",
    "-l",
  ],
  env: { ...RUN_ENV, TERM: "xterm-256color", PS1: "(transient) \\w # " },
  summary: `${quoteArgv(CHROOT_PREFIX)} /bin/sh -l <${request.console} >${request.console} 2>&1`,
})

// ---------------------------------------------------------------------------------------------
// COPY and ADD

/** `source` as the guest sees it, under its read-only mount of BUILD_DIR. */
export const contextPath = (source: GuestSource): string =>
  source.path === "." || source.path === "" ? CONTEXT_DIR : `${CONTEXT_DIR}/${source.path}`

// copy_in MODE DEST SOURCE...: copies each source into the build root at DEST. Mode "dir": DEST
// is a directory, a directory source gives its contents, a file lands under its own name. Mode
// "file": the one source becomes DEST (or lands inside it if that is an existing directory, as
// with cp). Files come in owned by root, as with Docker's COPY: BUILD_DIR belongs to the user
// who runs the build, not to anyone in the image.
const COPY_FUNCTION = `copy_in() {
  mode=$1 dest=$2; shift 2
  if [ "$mode" = file ]; then
    mkdir -p "$(dirname "$dest")"
    ${CP} -a -H "$1" "$dest"
    if [ -d "$dest" ] && [ ! -L "$dest" ]; then
      chown -R -h 0:0 "$dest/\${1##*/}"
    else
      chown -R -h 0:0 "$dest"
    fi
    return
  fi
  mkdir -p "$dest"
  for src; do
    if [ -d "$src" ]; then
      ${CP} -a -H "$src/." "$dest/"
      find "$src/" -mindepth 1 -maxdepth 1 -exec sh -c \\
        'd=$1; shift; for e; do chown -R -h 0:0 "$d/\${e##*/}"; done' sh "$dest" {} +
    else
      ${CP} -a -H "$src" "$dest/"
      chown -R -h 0:0 "$dest/\${src##*/}"
    fi
  done
}`

const COPY_SCRIPT = `set -e
${COPY_FUNCTION}
copy_in "$@"`

/** Whether COPY's destination is a directory: several sources, a trailing `/`, or a directory. */
const copiesIntoDirectory = (
  sources: ReadonlyArray<GuestSource>,
  destination: string,
): boolean =>
  sources.length !== 1 || destination.endsWith("/") || destination === "." ||
  sources.every((source) => source.kind === "directory")

const copyLines = (
  sources: ReadonlyArray<GuestSource>,
  target: string,
  intoDirectory: boolean,
): string => {
  if (!intoDirectory) {
    return [
      `mkdir -p ${quote(target.replace(/\/[^/]*$/, "") || "/")}`,
      `cp -a ${quote(contextPath(sources[0]!))} ${quote(target)}`,
    ].join("\n")
  }
  return [
    `mkdir -p ${quote(target)}`,
    ...sources.map((source) =>
      source.kind === "directory"
        ? `cp -a ${quote(`${contextPath(source)}/.`)} ${quote(`${target}/`)}`
        : `cp -a ${quote(contextPath(source))} ${quote(`${target}/`)}`
    ),
    `chown -R 0:0 (what was copied)`,
  ].join("\n")
}

export const copyCommands = (
  request: { readonly sources: ReadonlyArray<GuestSource>; readonly destination: string },
): ReadonlyArray<GuestCommand> => {
  const target = inRoot(request.destination)
  const intoDirectory = copiesIntoDirectory(request.sources, request.destination)
  return [{
    argv: [
      "/bin/sh",
      "-c",
      COPY_SCRIPT,
      "sh",
      intoDirectory ? "dir" : "file",
      target,
      ...request.sources.map(contextPath),
    ],
    summary: copyLines(request.sources, target, intoDirectory),
  }]
}

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

// An archive is whatever tar can list an entry of (the listing stops at the first entry);
// anything else is copied as COPY would copy it.
const EXTRACT_SCRIPT = `set -e
${COPY_FUNCTION}
mode=$1 src=$2 dest=$3; shift 3
if [ -n "$(${TAR} -t -f "$src" 2>/dev/null | head -n 1)" ]; then
  mkdir -p "$dest"
  exec ${TAR} -x -f "$src" -C "$dest" "$@"
fi
copy_in "$mode" "$dest" "$src"`

/** ADD: a directory is copied as COPY does; a file is extracted if it is an archive. */
export const extractCommands = (
  request: { readonly source: GuestSource; readonly destination: string },
): ReadonlyArray<GuestCommand> => {
  if (request.source.kind === "directory") {
    return copyCommands({ ...request, sources: [request.source] })
  }
  const target = inRoot(request.destination)
  const source = contextPath(request.source)
  const mode = copiesIntoDirectory([request.source], request.destination) ? "dir" : "file"
  return [{
    argv: ["/bin/sh", "-c", EXTRACT_SCRIPT, "sh", mode, source, target, ...TAR_EXTRACT_OPTIONS],
    summary: [
      `if ${quote(source)} is an archive:`,
      `  tar -x -f ${quote(source)} -C ${quote(target)} ${quoteArgv(TAR_EXTRACT_OPTIONS)}`,
      "else:",
      ...copyLines([request.source], target, mode === "dir").split("\n").map((line) => `  ${line}`),
    ].join("\n"),
  }]
}

// ---------------------------------------------------------------------------------------------
// The end

export const syncCommands = (): ReadonlyArray<GuestCommand> => [{ argv: ["sync"] }]

// Unmount the whole build root, deepest first, so every filesystem is clean when the VM stops.
const RELEASE_SCRIPT = `root=$1
sync
if [ -f /run/transient-resolv ]; then
  created=$(cat /run/transient-resolv)
  ${UMOUNT} "$created" && rm -f "$created" && rm -f /run/transient-resolv
fi
if grep -q " $root " /proc/mounts; then
  ${UMOUNT} -R "$root" || { echo "unmounting lazily" >&2; ${UMOUNT} -R -l "$root"; }
fi
# Only when a device-mapper device exists (LVM found by root discovery): vgchange scans every
# disk, a fifth of a second under TCG.
for dm in /sys/block/dm-*; do
  [ -e "$dm" ] && { vgchange -an >/dev/null 2>&1 || true; }
  break
done
sync`

export const releaseCommands = (): ReadonlyArray<GuestCommand> => [{
  argv: ["/bin/sh", "-c", RELEASE_SCRIPT, "sh", BUILD_ROOT],
  summary: `sync\numount -R ${BUILD_ROOT}`,
}]

/** The commands of one operation, in order. */
export const commandsFor = (operation: GuestOperation): ReadonlyArray<GuestCommand> => {
  switch (operation._tag) {
    case "PartitionDisk":
      return partitionCommands(operation.layout)
    case "Format":
      return formatCommands(operation)
    case "MountPartitions":
      return mountCommands(operation.mounts)
    case "DiscoverRoot":
      return discoverRootCommands()
    case "PrepareChroot":
      return prepareChrootCommands()
    case "CopyIn":
      return copyCommands(operation)
    case "Extract":
      return extractCommands(operation)
    case "Run":
      return [runCommand(operation.command)]
    case "Shell":
      return [shellCommand(operation)]
    case "Sync":
      return syncCommands()
    case "Release":
      return releaseCommands()
  }
}

// ---------------------------------------------------------------------------------------------
// Describing

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/

/** A word as a POSIX shell would need it written. */
export const quote = (word: string): string =>
  SAFE.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`

export const quoteArgv = (argv: ReadonlyArray<string>): string => argv.map(quote).join(" ")

/** One command as readable shell lines. */
export const describeCommand = (command: GuestCommand): ReadonlyArray<string> =>
  command.summary !== undefined ? command.summary.split("\n") : [quoteArgv(command.argv)]

/** What the helper VM does for `operation`, as `build --dry-run` shows it. */
export const describe = (operation: GuestOperation): ReadonlyArray<string> =>
  commandsFor(operation).flatMap(describeCommand)
