/**
 * `transient run`: boot a built image on a throw-away overlay (the image itself is never
 * written), its serial console wired to the user's terminal, or watched for a line that says the
 * image is up. QEMU dies with transient, and the overlay goes with the scope.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as Path from "@effect/platform/Path"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { DiskImageError } from "../../domain/errors/store.ts"
import { RunFailed, type UefiFirmwareMissing } from "../../domain/errors/vm.ts"
import type { PortForward, RunOutcome } from "../../domain/vm_run.ts"
import { DiskImages } from "../../services/disk_images.ts"
import type { RunOptions } from "../../services/vm_runner.ts"
import { Terminal, type TerminalShape } from "../../services/terminal.ts"
import { lastLines } from "../host_process.ts"
import { defaultCpus, enginesFor, kvmUsable } from "./accel.ts"
import { DISK_ID, machineArgs, option, QEMU_SYSTEM, scsiDisk } from "./qemu_machine.ts"
import { connectUnix } from "./unix_socket.ts"
import { locateOvmf, OVMF_DIRECTORY } from "./uefi_firmware.ts"
import { qemuExitReason, startQemu, vmDirectory } from "./vm_boot.ts"

/** Ctrl-]: leaves the console (and stops the VM), as telnet's escape. */
const ESCAPE = 0x1d

/** How much of the console is kept to match `--until` against and to show on a failure. */
const TAIL_CHARS = 16 * 1024

/** A UEFI boot: OVMF's code and this run's own copy of its variable store. */
export interface UefiBoot {
  readonly code: string
  /** Written by the firmware: a copy, thrown away with the run. */
  readonly vars: string
  readonly secureBoot: boolean
}

/**
 * The firmware's part of the command line: nothing for SeaBIOS (QEMU's default), else OVMF as
 * two flash chips. The Secure Boot build runs its variable services in SMM, and only SMM code may
 * write the flash, or the guest could rewrite the keys.
 */
export const firmwareArgs = (uefi: UefiBoot | undefined): ReadonlyArray<string> =>
  uefi === undefined ? [] : [
    ...(uefi.secureBoot
      ? ["-machine", "smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"]
      : []),
    "-drive",
    `if=pflash,format=raw,unit=0,readonly=on,file=${option(uefi.code)}`,
    "-drive",
    `if=pflash,format=raw,unit=1,file=${option(uefi.vars)}`,
  ]

/** The qemu-system-x86_64 command line of a run. */
export const runArgv = (options: {
  readonly engine: "kvm" | "tcg"
  readonly cpus: number
  readonly memoryMiB: number
  readonly overlay: string
  readonly consoleSocket: string
  readonly qmpSocket: string
  readonly network: boolean
  readonly forwards: ReadonlyArray<PortForward>
  /** Where to show the screen over VNC (`127.0.0.1:N`), if anywhere. */
  readonly vnc?: string
  /** Boot with OVMF; absent, with SeaBIOS. */
  readonly uefi?: UefiBoot
}): readonly [string, ...Array<string>] => {
  const forwards = options.forwards.map((f) => `,hostfwd=tcp:127.0.0.1:${f.host}-:${f.guest}`)
  return [
    QEMU_SYSTEM,
    ...machineArgs(options),
    ...firmwareArgs(options.uefi),
    // On virtio-scsi, as in the helper VM: the disk is /dev/sda, as the image's build saw it.
    "-drive",
    `file=${option(options.overlay)},format=qcow2,if=none,id=${DISK_ID},cache=unsafe`,
    ...scsiDisk(DISK_ID),
    "-chardev",
    `socket,id=console,path=${option(options.consoleSocket)},server=on,wait=on`,
    "-serial",
    "chardev:console",
    // A screen, if nobody looks at it: GRUB's default terminal waits for a video device before
    // it boots a kernel, whose console is then the serial line on the kernel's command line.
    "-device",
    "VGA",
    ...(options.vnc === undefined ? [] : ["-vnc", options.vnc]),
    ...(options.network
      ? [
        "-netdev",
        `user,id=net0${forwards.join("")}`,
        "-device",
        "virtio-net-pci,netdev=net0,romfile=",
      ]
      : []),
  ]
}

/**
 * A writable copy of OVMF's variable store template at `to`, in the run's directory: what the
 * guest writes there (boot entries, a changed key) is gone with the run, as the overlay is.
 */
const copyVariableStore = (template: string, to: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) =>
    fs.copyFile(template, to).pipe(
      Effect.zipRight(fs.chmod(to, 0o600)),
      Effect.as(to),
      Effect.mapError((error) =>
        new RunFailed({
          reason: `cannot copy the UEFI variable store ${template}: ${error.message}`,
        })
      ),
    ))

/** A started run: QEMU on an overlay of the image, its console connected, the log opened. */
const startRun = (options: RunOptions) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const disks = yield* DiskImages
    const ovmf = options.firmware === "uefi"
      ? yield* locateOvmf(OVMF_DIRECTORY, { secureBoot: options.secureBoot })
      : undefined
    const dir = yield* vmDirectory.pipe(
      Effect.mapError((error) => new RunFailed({ reason: error.message })),
    )
    const overlay = path.join(dir, "overlay.qcow2")
    yield* disks.overlay({ path: overlay, backing: options.image })
    const uefi = ovmf === undefined ? undefined : {
      code: ovmf.code,
      vars: yield* copyVariableStore(ovmf.vars, path.join(dir, "OVMF_VARS.fd")),
      secureBoot: options.secureBoot,
    }
    const kvm = yield* kvmUsable
    const [engine = "tcg"] = enginesFor(options.accel, kvm)
    const consoleSocket = path.join(dir, "console.sock")
    const qmpSocket = path.join(dir, "qmp.sock")
    const argv = runArgv({
      engine,
      cpus: options.cpus ?? defaultCpus(engine),
      memoryMiB: options.memoryMiB,
      overlay,
      consoleSocket,
      qmpSocket,
      network: options.network,
      forwards: options.forwards,
      ...(options.vnc === undefined ? {} : { vnc: options.vnc }),
      ...(uefi === undefined ? {} : { uefi }),
    })
    const qemu = yield* startQemu(argv, qmpSocket).pipe(
      Effect.mapError((missing) => new RunFailed({ reason: missing.message })),
    )
    const console = yield* connectUnix(consoleSocket, { attempts: 100 }).pipe(
      Effect.mapError((error) => new RunFailed({ reason: error.message })),
    )
    const log = options.consoleLog === undefined
      ? undefined
      : yield* fs.open(options.consoleLog, { flag: "w" }).pipe(
        Effect.mapError((error) => new RunFailed({ reason: error.message })),
      )
    return { qemu, console, log }
  })

/** The end of the console's output, kept to match `--until` against and to show on a failure. */
class ConsoleTail {
  private text = ""
  private readonly decoder = new TextDecoder()
  push(chunk: Uint8Array): string {
    this.text = (this.text + this.decoder.decode(chunk, { stream: true })).slice(-TAIL_CHARS)
    return this.text.replaceAll("\r", "")
  }
  lines(): ReadonlyArray<string> {
    return lastLines(this.text.replaceAll("\r", ""), 20)
  }
}

/**
 * The console, chunk by chunk: to the terminal (unless watching), to the log, to the tail.
 * Ends with the line that matched `until`, or with nothing when the console closes.
 */
const consoleOutput = (
  console: { readonly readable: ReadableStream<Uint8Array> },
  options: RunOptions,
  to: {
    readonly terminal: TerminalShape
    readonly log: FileSystem.File | undefined
    readonly tail: ConsoleTail
  },
) =>
  Stream.fromReadableStream({
    evaluate: () => console.readable,
    onError: (error) => error,
    releaseLockOnEnd: true,
  }).pipe(
    // The console closes when QEMU exits: that is the end of its output, not an error.
    Stream.catchAll(() => Stream.empty),
    Stream.mapEffect((chunk) =>
      Effect.gen(function* () {
        if (options.until === undefined) yield* to.terminal.write(chunk)
        if (to.log !== undefined) yield* Effect.ignore(to.log.writeAll(chunk))
        const tail = to.tail.push(chunk)
        const match = options.until === undefined ? null : options.until.exec(tail)
        return match === null ? Option.none<string>() : Option.some(match[0])
      })
    ),
    Stream.filterMap((matched) => matched),
    Stream.runHead,
    Effect.map(Option.match({
      onNone: (): RunOutcome | undefined => undefined,
      onSome: (line): RunOutcome => ({ _tag: "Matched", line }),
    })),
  )

/** What the user types goes to the console; on a terminal, Ctrl-] leaves. */
const consoleInput = (
  writer: WritableStreamDefaultWriter<Uint8Array>,
  terminal: TerminalShape,
  interactive: boolean,
) =>
  terminal.input.pipe(
    Stream.takeUntil((chunk) => interactive && chunk.includes(ESCAPE)),
    Stream.runForEach((chunk) => {
      const escape = interactive ? chunk.indexOf(ESCAPE) : -1
      const bytes = escape === -1 ? chunk : chunk.subarray(0, escape)
      return Effect.promise(() => writer.write(bytes).catch(() => {}))
    }),
    Effect.zipRight(
      interactive ? Effect.succeed<RunOutcome>({ _tag: "Detached" }) : Effect.never,
    ),
  )

/** Boot `options.image` until the console matches, the VM powers off, or the user leaves. */
export const runImage = (
  options: RunOptions,
): Effect.Effect<
  RunOutcome,
  RunFailed | UefiFirmwareMissing | DiskImageError,
  | DiskImages
  | Terminal
  | FileSystem.FileSystem
  | Path.Path
  | CommandExecutor.CommandExecutor
> =>
  Effect.scoped(Effect.gen(function* () {
    const terminal = yield* Terminal
    const { qemu, console, log } = yield* startRun(options)
    const tail = new ConsoleTail()
    const interactive = options.until === undefined && terminal.interactive
    const output = consoleOutput(console, options, { terminal, log, tail })
    const writer = console.writable.getWriter()
    if (interactive) yield* terminal.raw
    const input = consoleInput(writer, terminal, interactive)
    const poweredOff = Effect.flatMap(
      Effect.zip(qemu.exited, qemuExitReason(qemu)),
      ([status, reason]): Effect.Effect<RunOutcome, RunFailed> => {
        // QEMU exits 0 when the guest powers off; anything else is QEMU failing (a forwarded
        // port that is taken, an image it cannot open), in its own words.
        if (status !== 0) return new RunFailed({ reason, log: tail.lines() })
        return options.until === undefined
          ? Effect.succeed({ _tag: "PoweredOff" })
          : new RunFailed({
            reason: `the VM stopped (${reason}) before a console line matched ${options.until}`,
            log: tail.lines(),
          })
      },
    )
    const watched = Effect.raceFirst(
      Effect.flatMap(
        output,
        (outcome) => outcome === undefined ? poweredOff : Effect.succeed(outcome),
      ),
      Effect.raceFirst(input, poweredOff),
    )
    const limited = options.timeoutSeconds === undefined ? watched : watched.pipe(
      Effect.timeoutFail({
        duration: Duration.seconds(options.timeoutSeconds),
        onTimeout: () =>
          new RunFailed({
            reason: options.until === undefined
              ? `the VM was still running after ${options.timeoutSeconds} s`
              : `no console line matched ${options.until} within ${options.timeoutSeconds} s`,
            log: tail.lines(),
          }),
      }),
    )
    return yield* limited
  }))
