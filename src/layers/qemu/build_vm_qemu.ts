/**
 * BuildVm over QEMU: the helper VM (our kernel + initramfs) with the working disk on virtio-blk,
 * BUILD_DIR on virtio-9p, the agent on a virtio-serial port, QMP and the serial console on files
 * and sockets in a private temporary directory. Each VmSession operation is a list of guest
 * commands (src/domain/guest_commands.ts) run through the agent.
 *
 * The VM is a scoped resource: closing the scope after success unmounts the image, syncs and
 * powers the guest off; after a failure or an interruption QEMU is told to quit over QMP. Either
 * way the process is killed if it lingers, and the temporary directory removed.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { VmError } from "../../domain/errors.ts"
import {
  commandsFor,
  describeCommand,
  type GuestCommand,
  type GuestOperation,
  type GuestSource,
  runCommand,
} from "../../domain/guest_commands.ts"
import {
  type BootOptions,
  BuildVm,
  type RunRequest,
  type VmSession,
} from "../../services/build_vm.ts"
import type { ContextEntry } from "../../services/build_context.ts"
import { Reporter, type ReporterShape } from "../../services/reporter.ts"
import { defaultCpus, type Engine, enginesFor, kvmUsable } from "./accel.ts"
import { type AgentClient, connectAgent } from "./agent_client.ts"
import { fastFirmware } from "./firmware.ts"
import { qmpQuit } from "./qmp.ts"
import {
  awaitExit,
  lastLines,
  missingToolReason,
  type SpawnedProcess,
  spawnScoped,
} from "./qemu_process.ts"

/** The helper VM's boot files (see guest/README.md). */
export interface GuestImages {
  readonly kernel: string
  readonly initrd: string
  /** A read-only disk holding Deno and the agent; absent when they are in the initramfs. */
  readonly runtime?: string
}

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

/** Under `--accel auto`, how long a KVM guest gets before the retry on TCG. */
const KVM_PROBE_SECONDS = 10
/**
 * Under `--accel auto`, how long a KVM guest may stay silent: init writes its first console line
 * well within a second when KVM works, while a guest that hangs under KVM writes nothing at all.
 */
const KVM_SILENCE_SECONDS = 4
const CONSOLE_LINES = 20
const OUTPUT_TAIL_BYTES = 64 * 1024

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
  readonly consoleLog: string
}

/** The emulator of the helper VM. */
const QEMU_SYSTEM = "qemu-system-x86_64"

/** The qemu-system-x86_64 command line of `machine`. */
export const qemuArgv = (machine: Machine): readonly [string, ...Array<string>] => [
  QEMU_SYSTEM,
  "-nodefaults",
  "-no-user-config",
  "-no-reboot",
  "-display",
  "none",
  ...(machine.firmware === undefined ? [] : ["-bios", machine.firmware]),
  "-machine",
  `q35,accel=${machine.engine}`,
  "-cpu",
  machine.engine === "kvm" ? "host" : "max",
  "-smp",
  String(machine.cpus),
  "-m",
  String(machine.memoryMiB),
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
  "-qmp",
  `unix:${option(machine.qmpSocket)},server=on,wait=off`,
  "-device",
  "virtio-rng-pci",
  // The working disk first, so that it is /dev/vda.
  "-drive",
  `file=${option(machine.disk)},format=qcow2,if=none,id=target,cache=unsafe,discard=unmap`,
  "-device",
  "virtio-blk-pci,drive=target",
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
]

/** A value inside a QEMU `key=value,...` option: commas are doubled. */
const option = (value: string): string => value.replaceAll(",", ",,")

// ---------------------------------------------------------------------------------------------

/** The last `CONSOLE_LINES` lines of the serial console. */
const consoleTail = (path: string): Effect.Effect<ReadonlyArray<string>> =>
  Effect.promise(() => Deno.readTextFile(path).catch(() => "")).pipe(
    Effect.map((text) => lastLines(text.replaceAll("\r", ""), CONSOLE_LINES)),
  )

/** Connect to a unix socket QEMU is about to create (retrying, interruptibly, meanwhile). */
const connectUnix = (path: string): Effect.Effect<Deno.UnixConn, VmError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => Deno.connect({ transport: "unix", path }),
      catch: (error) =>
        new VmError({ operation: "boot", reason: `cannot connect to ${path} (${String(error)})` }),
    }),
    (conn) => Effect.sync(() => closeQuietly(conn)),
  ).pipe(Effect.retry({ times: 250, schedule: Schedule.spaced("20 millis") }))

const closeQuietly = (conn: Deno.Conn) => {
  try {
    conn.close()
  } catch {
    // Already closed, by us or by QEMU.
  }
}

/** A bounded tail of a command's output, for error messages. */
class OutputTail {
  private chunks: Array<Uint8Array> = []
  private size = 0
  push(chunk: Uint8Array) {
    this.chunks.push(chunk)
    this.size += chunk.length
    while (this.size > OUTPUT_TAIL_BYTES && this.chunks.length > 1) {
      this.size -= this.chunks.shift()!.length
    }
  }
  lines(count: number): ReadonlyArray<string> {
    const bytes = new Uint8Array(this.size)
    let offset = 0
    for (const chunk of this.chunks) {
      bytes.set(chunk, offset)
      offset += chunk.length
    }
    return lastLines(new TextDecoder().decode(bytes), count)
  }
}

const asArgv = (argv: ReadonlyArray<string>): readonly [string, ...Array<string>] => {
  const [first, ...rest] = argv
  if (first === undefined) throw new Error("empty argv")
  return [first, ...rest]
}

const guestSource = (entry: ContextEntry): GuestSource => ({ path: entry.path, kind: entry.kind })

/** A running helper VM whose agent said hello. */
interface Booted {
  readonly process: SpawnedProcess
  readonly client: AgentClient
  readonly machine: Machine
}

/** Fails when the guest's console is still empty after `seconds`; otherwise never ends. */
const silentConsole = (machine: Machine, seconds: number): Effect.Effect<never, VmError> =>
  Effect.sleep(Duration.seconds(seconds)).pipe(
    Effect.zipRight(
      Effect.promise(() => Deno.stat(machine.consoleLog).then((info) => info.size, () => 0)),
    ),
    Effect.flatMap((size) =>
      size > 0 ? Effect.never : new VmError({
        operation: "boot",
        reason: `the guest wrote nothing on its console within ${seconds} s under ` +
          machine.engine.toUpperCase(),
      })
    ),
  )

/**
 * Start QEMU and wait for the agent's hello, for `timeoutSeconds` at most; with
 * `silenceSeconds`, give up early on a guest that has written nothing on its console by then.
 */
const bootOnce = (
  machine: Machine,
  timeoutSeconds: number,
  silenceSeconds?: number,
): Effect.Effect<Booted, VmError, Scope.Scope> =>
  Effect.gen(function* () {
    const process = yield* spawnScoped(qemuArgv(machine), { gracePeriod: "3 seconds" }).pipe(
      Effect.mapError(() =>
        new VmError({ operation: "boot", reason: missingToolReason(QEMU_SYSTEM) })
      ),
    )
    // Runs before the kill of spawnScoped: ask QEMU to quit, which closes the disk cleanly.
    yield* Effect.addFinalizer(() =>
      process.hasExited() ? Effect.void : qmpQuit(machine.qmpSocket, "3 seconds").pipe(
        Effect.zipRight(awaitExit(process, "10 seconds")),
      )
    )

    const exited = Effect.promise(() => process.exited).pipe(
      Effect.flatMap((code) =>
        Effect.gen(function* () {
          const stderr = lastLines(process.stderrTail(), 3).join("; ")
          return yield* new VmError({
            operation: "boot",
            reason: `QEMU exited with status ${code}${stderr ? `: ${stderr}` : ""}`,
            log: yield* consoleTail(machine.consoleLog),
          })
        })
      ),
    )
    const hello = Effect.gen(function* () {
      const conn = yield* connectUnix(machine.agentSocket)
      // The agent's own limit is a little longer, so that the boot timeout below speaks first.
      return yield* connectAgent(conn, { helloTimeout: Duration.seconds(timeoutSeconds + 1) })
    })
    // The first to end, success or failure, decides (raceAll would wait for a success).
    const stopped = silenceSeconds === undefined
      ? exited
      : Effect.raceFirst(exited, silentConsole(machine, silenceSeconds))
    const client = yield* Effect.raceFirst(hello, stopped).pipe(
      Effect.timeout(Duration.seconds(timeoutSeconds)),
      Effect.catchTag("TimeoutException", () =>
        Effect.flatMap(consoleTail(machine.consoleLog), (log) =>
          new VmError({
            operation: "boot",
            reason:
              `the guest did not come up within ${timeoutSeconds} s under ${machine.engine.toUpperCase()}`,
            log,
          }))),
      // The agent channel closing usually means the guest stopped: say so, with its console.
      Effect.catchIf(
        (error) =>
          error.operation !== "boot",
        (error) =>
          Effect.gen(function* () {
            const stopped = yield* awaitExit(process, "2 seconds")
            return yield* new VmError({
              operation: "boot",
              reason: stopped
                ? "the guest stopped before its agent started"
                : `the guest's agent did not start (${error.reason})`,
              log: yield* consoleTail(machine.consoleLog),
            })
          }),
      ),
    )
    return { process, client, machine }
  })

const makeSession = (booted: Booted): Effect.Effect<VmSession> =>
  Effect.sync(() => {
    const { client, machine } = booted

    /** Run one command; a non-zero status is a VmError naming it, with its last output. */
    const execChecked = (operation: string, command: GuestCommand) =>
      Effect.gen(function* () {
        const tail = new OutputTail()
        const code = yield* client.exec({
          argv: asArgv(command.argv),
          ...(command.env === undefined ? {} : { env: command.env }),
          onOutput: (_stream, chunk) => Effect.sync(() => tail.push(chunk)),
        })
        if (code !== 0) {
          const [first] = describeCommand(command)
          return yield* new VmError({
            operation,
            reason: `\`${first}\` exited with status ${code}`,
            log: tail.lines(CONSOLE_LINES),
          })
        }
      })

    const perform = (operation: string, guest: GuestOperation) =>
      Effect.forEach(commandsFor(guest), (command) => execChecked(operation, command), {
        discard: true,
      })

    const run = Effect.fn("VmSession.run")(function* (request: RunRequest) {
      const command = runCommand(request.command)
      return yield* client.exec({
        argv: asArgv(command.argv),
        ...(command.env === undefined ? {} : { env: command.env }),
        onOutput: request.onOutput,
      })
    })

    const shell = Effect.gen(function* () {
      if (!Deno.stdin.isTerminal() || !Deno.stdout.isTerminal()) {
        return yield* new VmError({
          operation: "open a shell",
          reason: "INSPECT needs a terminal on standard input and output",
        })
      }
      return yield* interactiveShell(client, machine)
    }).pipe(Effect.scoped, Effect.withSpan("VmSession.shell"))

    const session: VmSession = {
      partitionDisk: (layout) => perform("partition the disk", { _tag: "PartitionDisk", layout }),
      format: (request) =>
        perform(`format partition ${request.partition} as ${request.fs}`, {
          _tag: "Format",
          ...request,
        }),
      mountPartitions: (mounts) =>
        perform("mount the partitions", { _tag: "MountPartitions", mounts }),
      discoverRoot: perform("find the image's root filesystem", { _tag: "DiscoverRoot" }),
      prepareChroot: perform("prepare the chroot", { _tag: "PrepareChroot" }),
      copyIn: (request) =>
        perform(`copy ${request.sources.map((s) => s.source).join(", ")}`, {
          _tag: "CopyIn",
          sources: request.sources.map(guestSource),
          destination: request.destination,
        }),
      extract: (request) =>
        perform(`add ${request.source.source}`, {
          _tag: "Extract",
          source: guestSource(request.source),
          destination: request.destination,
        }),
      run,
      shell,
      sync: perform("sync the disk", { _tag: "Sync" }),
    }
    return session
  })

/**
 * INSPECT: the user's terminal, in raw mode, wired to the guest's virtio console, where a login
 * shell runs in the chroot; returns the shell's exit status.
 */
const interactiveShell = (client: AgentClient, machine: Machine) =>
  Effect.gen(function* () {
    const conn = yield* connectUnix(machine.shellSocket)
    const { columns, rows } = Deno.consoleSize()
    yield* Effect.acquireRelease(
      Effect.sync(() => Deno.stdin.setRaw(true)),
      () => Effect.sync(() => Deno.stdin.setRaw(false)),
    )
    // Chunk by chunk rather than through Deno.stdout.writable: a pipe into that stream would
    // close the process's stdout when the console's socket closes, and the build goes on after.
    const toTerminal = yield* Effect.promise(async () => {
      const buffer = new Uint8Array(16 * 1024)
      for (;;) {
        const n = await conn.read(buffer).catch(() => null)
        if (n === null) return
        for (let offset = 0; offset < n;) {
          offset += await Deno.stdout.write(buffer.subarray(offset, n))
        }
      }
    }).pipe(Effect.forkScoped)
    // A read of stdin cannot be cancelled: the one pending when the shell ends is dropped.
    const fromTerminal = yield* Effect.promise(async () => {
      const writer = conn.writable.getWriter()
      const buffer = new Uint8Array(4096)
      for (;;) {
        const n = await Deno.stdin.read(buffer)
        if (n === null) break
        await writer.write(buffer.slice(0, n))
      }
    }).pipe(Effect.ignore, Effect.forkScoped)
    const command = commandsFor({
      _tag: "Shell",
      console: GUEST_DEVICES.shellTty,
      rows,
      columns,
    })[0]!
    const code = yield* client.exec({
      argv: asArgv(command.argv),
      ...(command.env === undefined ? {} : { env: command.env }),
    })
    yield* Fiber.interrupt(fromTerminal)
    yield* Fiber.interrupt(toTerminal)
    return code
  })

/**
 * The end of a VM. After success: unmount, sync and power off through the agent, and wait for
 * QEMU to exit, so that the qcow2 is complete and closed. After a failure: QEMU quits at once.
 */
const stop = (booted: Booted, exit: Exit.Exit<unknown, unknown>, reporter: ReporterShape) =>
  Effect.gen(function* () {
    if (Exit.isSuccess(exit)) {
      const released = yield* Effect.forEach(
        commandsFor({ _tag: "Release" }),
        (command) =>
          booted.client.exec({ argv: asArgv(command.argv) }).pipe(
            Effect.filterOrFail((code) => code === 0, () => "failed"),
          ),
        { discard: true },
      ).pipe(Effect.timeout("60 seconds"), Effect.either)
      if (released._tag === "Left") {
        yield* reporter.warn("The helper VM could not unmount the image cleanly")
      }
      yield* booted.client.shutdown.pipe(Effect.timeout("30 seconds"), Effect.ignore)
      if (yield* awaitExit(booted.process, "30 seconds")) return
      yield* reporter.warn("The helper VM did not power off; stopping QEMU")
    }
    if (!booted.process.hasExited()) {
      yield* qmpQuit(booted.machine.qmpSocket, "3 seconds")
      yield* awaitExit(booted.process, "10 seconds")
    }
  })

const makeTempDirectory = Effect.acquireRelease(
  Effect.promise(() => Deno.makeTempDir({ prefix: "transient-vm-" })),
  (dir) => Effect.promise(() => Deno.remove(dir, { recursive: true }).catch(() => {})),
)

/** BuildVm over QEMU, booting the guest files that `images` finds. */
export const makeBuildVmQemu = (
  images: Effect.Effect<GuestImages, VmError>,
): Layer.Layer<BuildVm, VmError, Reporter> =>
  Layer.effect(
    BuildVm,
    Effect.gen(function* () {
      const reporter = yield* Reporter
      // Found when the layer is built, so a missing artifact stops a build before it starts.
      const guest = yield* images
      const firmware = yield* fastFirmware(QEMU_SYSTEM)
      const boot = Effect.fn("BuildVm.boot")(function* (options: BootOptions) {
        const scope = yield* Effect.scope
        const dir = yield* makeTempDirectory
        const kvm = yield* kvmUsable
        if (options.accel === "kvm" && !kvm) {
          return yield* new VmError({
            operation: "boot",
            reason: "KVM is not usable here (/dev/kvm cannot be opened); use --accel tcg",
          })
        }
        const engines = enginesFor(options.accel, kvm)
        for (const [index, engine] of engines.entries()) {
          const machine: Machine = {
            engine,
            ...(firmware === undefined ? {} : { firmware }),
            cpus: options.cpus ?? defaultCpus(engine),
            memoryMiB: options.memoryMiB,
            images: guest,
            disk: options.disk,
            context: options.context,
            network: options.network,
            agentSocket: `${dir}/agent-${index}.sock`,
            shellSocket: `${dir}/shell-${index}.sock`,
            qmpSocket: `${dir}/qmp-${index}.sock`,
            consoleLog: `${dir}/console-${index}.log`,
          }
          const isLast = index === engines.length - 1
          const timeout = isLast
            ? options.bootTimeoutSeconds
            : Math.min(options.bootTimeoutSeconds, KVM_PROBE_SECONDS)
          const attempt = yield* Scope.fork(scope, ExecutionStrategy.sequential)
          const booted = yield* bootOnce(machine, timeout, isLast ? undefined : KVM_SILENCE_SECONDS)
            .pipe(
              Scope.extend(attempt),
              Effect.either,
            )
          if (booted._tag === "Right") {
            yield* Scope.addFinalizerExit(attempt, (exit) => stop(booted.right, exit, reporter))
            return yield* makeSession(booted.right)
          }
          yield* Scope.close(attempt, Exit.fail(booted.left))
          if (isLast) return yield* booted.left
          yield* reporter.warn(
            `The helper VM failed under KVM (${booted.left.reason}); retrying with TCG ` +
              "(slower; use --accel tcg to skip KVM)",
          )
        }
        return yield* new VmError({ operation: "boot", reason: "no accelerator to try" })
      })
      return BuildVm.of({ boot })
    }),
  )
