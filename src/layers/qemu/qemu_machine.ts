/**
 * The helper VM as a QEMU machine: its devices and the qemu-system-x86_64 command line. Pure.
 */
import type { Engine } from "./accel.ts"

/** The helper VM's boot files (see guest/README.md). */
export interface GuestImages {
  readonly kernel: string
  readonly initrd: string
  /** A read-only disk holding Deno and the agent; absent when they are in the initramfs. */
  readonly runtime?: string
  /** The digest of what they were made from (their manifest's `inputs`), when known. */
  readonly inputs?: string
}

/** The working disk's SCSI controller. */
const SCSI_ID = "scsi0"

/** The QEMU node name of the working disk as it is attached (QMP commands name it). */
export const DISK_ID = "target"

/** The devices guest/init looks for. */
export const GUEST_DEVICES = {
  agentPort: "transient.agent",
  shellPort: "transient.shell",
  contextTag: "context",
  runtimeSerial: "transient-runtime",
  /** The INSPECT shell's terminal: the only virtio console, so the first hvc. */
  shellTty: "/dev/hvc0",
} as const

/**
 * Quiet boot on the serial console; a panic ends QEMU at once (`panic=-1` + `-no-reboot`). The
 * rest skips boot work a throwaway build VM has no use for, which under TCG costs about a second
 * and a half: the crypto self-tests (the SP800-108 KDF's runs even with `notests` and alone takes
 * 0.7 s), the kprobe tracer, the encrypted-keys key type, audit, IPv6 (QEMU's user-mode network
 * is set up for IPv4), probing three more UARTs and a PS/2 mouse.
 */
export const KERNEL_CMDLINE = [
  "console=ttyS0",
  "panic=-1",
  "quiet",
  "loglevel=4",
  "cryptomgr.notests",
  "initcall_blacklist=crypto_kdf108_init,init_kprobe_trace,init_encrypted",
  "audit=0",
  "ipv6.disable=1",
  "8250.nr_uarts=1",
  "i8042.noaux",
].join(" ")

export interface Machine {
  readonly engine: Engine
  /** `-bios`: a firmware file in QEMU's data directories; absent, QEMU's default. */
  readonly firmware?: string
  readonly cpus: number
  readonly memoryMiB: number
  readonly images: GuestImages
  /** The working qcow2. */
  readonly disk: string
  /** BUILD_DIR. */
  readonly context: string
  readonly network: boolean
  readonly agentSocket: string
  readonly shellSocket: string
  readonly qmpSocket: string
  /** Where a state is saved to or restored from (vm_state.ts). */
  readonly migrationSocket: string
  readonly consoleLog: string
}

/** The emulator of the helper VM. */
export const QEMU_SYSTEM = "qemu-system-x86_64"

/**
 * What every VM transient starts has: no default devices or config, no display, a q35 machine
 * on `engine` with the host's CPU (KVM) or every feature TCG emulates, its vCPUs and memory, a
 * QMP socket and an entropy source.
 */
export const machineArgs = (machine: {
  readonly engine: Engine
  readonly cpus: number
  readonly memoryMiB: number
  readonly qmpSocket: string
}): ReadonlyArray<string> => [
  "-nodefaults",
  "-no-user-config",
  "-display",
  "none",
  "-machine",
  `q35,accel=${machine.engine}`,
  "-cpu",
  machine.engine === "kvm" ? "host" : "max",
  "-smp",
  String(machine.cpus),
  "-m",
  String(machine.memoryMiB),
  "-qmp",
  `unix:${option(machine.qmpSocket)},server=on,wait=off`,
  "-device",
  "virtio-rng-pci",
]

/**
 * The qemu-system-x86_64 command line of `machine`, without its working disk, which is
 * hot-plugged once the guest runs (attachDisk): the same line then serves a boot and a restore
 * from a saved state (`incoming`: QEMU waits for `migrate-incoming`), which must describe the
 * same devices. Only backends differ between two machines: sockets, files, the context's path.
 */
export const qemuArgv = (
  machine: Machine,
  options: { readonly incoming?: boolean } = {},
): readonly [string, ...Array<string>] => [
  QEMU_SYSTEM,
  ...machineArgs(machine),
  "-no-reboot",
  ...(machine.firmware === undefined ? [] : ["-bios", machine.firmware]),
  "-kernel",
  machine.images.kernel,
  "-initrd",
  machine.images.initrd,
  "-append",
  KERNEL_CMDLINE,
  "-chardev",
  `file,id=console,path=${option(machine.consoleLog)}`,
  "-serial",
  "chardev:console",
  // Its one disk, the working disk, comes later (attachDisk).
  "-device",
  `virtio-scsi-pci,id=${SCSI_ID}`,
  ...(machine.images.runtime === undefined ? [] : [
    "-drive",
    `file=${option(machine.images.runtime)},format=raw,if=none,id=runtime,readonly=on`,
    "-device",
    `virtio-blk-pci,drive=runtime,serial=${GUEST_DEVICES.runtimeSerial}`,
  ]),
  "-fsdev",
  `local,id=context,path=${option(machine.context)},security_model=none,readonly=on`,
  "-device",
  `virtio-9p-pci,fsdev=context,mount_tag=${GUEST_DEVICES.contextTag}`,
  "-device",
  "virtio-serial-pci,id=serial0",
  "-chardev",
  `socket,id=agent,path=${option(machine.agentSocket)},server=on,wait=off`,
  "-device",
  `virtserialport,bus=serial0.0,chardev=agent,name=${GUEST_DEVICES.agentPort}`,
  "-chardev",
  `socket,id=shell,path=${option(machine.shellSocket)},server=on,wait=off`,
  "-device",
  `virtconsole,bus=serial0.0,chardev=shell,name=${GUEST_DEVICES.shellPort}`,
  ...(machine.network
    ? ["-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,romfile="]
    : []),
  ...(options.incoming === true ? ["-incoming", "defer"] : []),
]

/** The working disk's SCSI device, as the guest finds it once hot-plugged. */
export const GUEST_DISK = "/dev/sda"

/**
 * The QMP commands that hot-plug `disk` (a qcow2) as the one disk of the machine's SCSI
 * controller, node `DISK_ID`: unsafe caching (a build's disk is thrown away when the build
 * fails) and the guest's discards passed down, as `-drive ...,cache=unsafe,discard=unmap`.
 */
export const attachDisk = (
  disk: string,
): ReadonlyArray<readonly [string, Record<string, unknown>]> => {
  const cache = { direct: false, "no-flush": true }
  return [
    ["blockdev-add", {
      driver: "qcow2",
      "node-name": DISK_ID,
      discard: "unmap",
      cache,
      file: { driver: "file", filename: disk, discard: "unmap", cache },
    }],
    ["device_add", {
      driver: "scsi-hd",
      id: `${DISK_ID}-disk`,
      bus: `${SCSI_ID}.0`,
      channel: 0,
      "scsi-id": 0,
      lun: 0,
      drive: DISK_ID,
    }],
  ]
}

/**
 * The drive `drive` as the one disk of a virtio-scsi controller (`/dev/sda` in a Linux guest):
 * target 0, LUN 0, so that the guest's scan finds it first.
 */
export const scsiDisk = (drive: string): ReadonlyArray<string> => [
  "-device",
  `virtio-scsi-pci,id=${SCSI_ID}`,
  "-device",
  `scsi-hd,bus=${SCSI_ID}.0,channel=0,scsi-id=0,lun=0,drive=${drive}`,
]

/** A value inside a QEMU `key=value,...` option: commas are doubled. */
export const option = (value: string): string => value.replaceAll(",", ",,")
