/**
 * Starting and stopping one helper VM: QEMU spawned as a scoped process, the agent's hello
 * awaited (with a deadline, and an early give-up on a silent guest), and the end of the VM — a
 * clean unmount and power-off after success, QEMU told to quit otherwise, SIGKILL if it lingers.
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { tmpdir } from "node:os"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import { AGENT_BUILTIN } from "../../domain/guest/builtins.ts"
import { commandFor } from "../../domain/guest/commands.ts"
import { VmBootFailed, type VmError } from "../../domain/errors/vm.ts"
import { GuestOperation } from "../../domain/guest/operation.ts"
import { OutputTail } from "../../domain/output_tail.ts"
import type { ReporterShape } from "../../services/reporter.ts"
import {
  awaitExit,
  describeStatus,
  diesWithParent,
  lastLines,
  programMissing,
  type RunningProcess,
  startProcess,
  ToolMissing,
} from "../host_process.ts"
import { atMost } from "../deadline.ts"
import { OWN_PID, ownedPath, sweepStale } from "../stale_files.ts"
import { type AgentClient, connectAgent } from "./agent_client.ts"
import { attachDisk, GUEST_DISK, type Machine, QEMU_SYSTEM, qemuArgv } from "./qemu_machine.ts"
import { connectQmp, type QmpClient, qmpQuit } from "./qmp.ts"
import { qmpFailed, restoreState, saveState, type StatePlan } from "./vm_state.ts"
import { connectUnix } from "./unix_socket.ts"

const CONSOLE_LINES = 20

/**
 * How long QEMU gets to answer `quit`, and then to exit, when a build stops. With the kill of a
 * running command (2 s) and SIGTERM's grace (1 s), a stop ends well within 10 s even when QEMU
 * is frozen.
 */
const QUIT_SECONDS = "2 seconds"

/** A running helper VM whose agent said hello. */
export interface BootedVm {
  readonly process: RunningProcess
  readonly client: AgentClient
  readonly machine: Machine
  /** How it started: from a saved state, or booted (and its state saved for later builds). */
  readonly start: "restored" | "booted" | "booted and saved"
  /** Why its state could not be saved, when it was to be. */
  readonly notSaved?: string
}

/** The last lines of the serial console (none when it cannot be read). */
export const consoleTail = (
  path: string,
): Effect.Effect<ReadonlyArray<string>, never, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(path)).pipe(
    Effect.map((text) => lastLines(text.replaceAll("\r", ""), CONSOLE_LINES)),
    Effect.orElseSucceed(() => []),
  )

/** Fails when the guest's console is still empty after `seconds`; otherwise never ends. */
const silentConsole = (machine: Machine, seconds: number) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    yield* Effect.sleep(Duration.seconds(seconds))
    const size = yield* fs.stat(machine.consoleLog).pipe(
      Effect.map((info) => Number(info.size)),
      Effect.orElseSucceed(() => 0),
    )
    if (size > 0) return yield* Effect.never
    return yield* new VmBootFailed({
      operation: "boot",
      reason: `the guest wrote nothing on its console within ${seconds} s under ` +
        machine.engine.toUpperCase(),
    })
  })

/**
 * A VM's temp directory is `transient-vm-<pid of its transient>-<random>`, owned through its
 * lock file beside it (stale_files.ts).
 */
const VM_DIR_PREFIX = "transient-vm-"

const isVmDirectory = (name: string): boolean => /^transient-vm-\d+-[0-9a-f-]{36}$/.test(name)

/**
 * A fresh temp directory for one VM (sockets, console log, overlay), removed with the scope.
 * The directories of VMs whose transient was killed, which nobody else removes, go first.
 */
export const vmDirectory: Effect.Effect<
  string,
  PlatformError,
  FileSystem.FileSystem | Path.Path | Scope.Scope
> = Effect.gen(function* () {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  // Named here rather than by makeTempDirectory: its lock must exist before it does.
  const dir = yield* ownedPath(
    path.join(tmpdir(), `${VM_DIR_PREFIX}${OWN_PID}-${crypto.randomUUID()}`),
  )
  yield* fs.makeDirectory(dir, { mode: 0o700 })
  yield* Effect.ignore(sweepStale(path.dirname(dir), isVmDirectory))
  return dir
})

/**
 * QEMU started as `argv`, tied to this process's life. Closing the scope asks it to quit over
 * `qmpSocket` first (which closes its disks cleanly), then stops the process whatever its state.
 */
export const startQemu = (
  argv: readonly [string, ...Array<string>],
  qmpSocket: string,
): Effect.Effect<RunningProcess, ToolMissing, CommandExecutor.CommandExecutor | Scope.Scope> =>
  Effect.gen(function* () {
    const process = yield* startProcess(diesWithParent(argv), { gracePeriod: "1 second" })
    // Runs before the process's own stop.
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(
        process.hasExited,
        (done) =>
          done ? Effect.void : qmpQuit(qmpSocket, QUIT_SECONDS).pipe(
            Effect.zipRight(awaitExit(process, QUIT_SECONDS)),
          ),
      )
    )
    return process
  })

/** Why QEMU (started by startQemu) is gone: not installed, or its exit status and stderr. */
export const qemuExitReason = (process: RunningProcess): Effect.Effect<string> =>
  Effect.gen(function* () {
    const status = yield* process.exited
    const tail = yield* process.stderrTail
    if (programMissing(status, tail)) return new ToolMissing({ program: QEMU_SYSTEM }).message
    // QEMU's notes on waiting for a socket's client say nothing about why it stopped.
    const said = tail.split("\n").filter((line) =>
      !/: info: QEMU waiting for connection/.test(line)
    )
    const stderr = lastLines(said.join("\n"), 3).join("; ")
    return `QEMU exited with ${describeStatus(status)}${stderr ? `: ${stderr}` : ""}`
  })

/** How a machine starts: with a state, restored from it or booted and saved to it; else booted. */
export interface BootPlan {
  readonly state?: StatePlan
  /** Give up early on a guest that has written nothing on its console by then (a cold boot). */
  readonly silenceSeconds?: number
}

/** `use` with a QMP connection of its own to `machine` (QEMU serves one at a time). */
const withQmp = <A, E, R>(
  machine: Machine,
  operation: string,
  use: (qmp: QmpClient) => Effect.Effect<A, E, R>,
) =>
  Effect.scoped(
    Effect.flatMap(connectQmp(machine.qmpSocket).pipe(Effect.mapError(qmpFailed(operation))), use),
  )

/** The agent of a guest that is up, and how the guest started. */
interface AgentUp {
  readonly client: AgentClient
  readonly start: BootedVm["start"]
  readonly notSaved?: string
}

/**
 * The agent of a started QEMU: the guest restored from `state` and resumed, or booted (its
 * state then saved, when the plan has one).
 */
const agentUp = (
  machine: Machine,
  state: StatePlan | undefined,
  helloTimeout: Duration.Duration,
): Effect.Effect<AgentUp, VmError, Scope.Scope | FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function* () {
    const agentChannel = connectUnix(machine.agentSocket).pipe(
      Effect.mapError((error) => new VmBootFailed({ operation: "boot", reason: error.message })),
    )
    if (state?.restore === true) {
      yield* withQmp(
        machine,
        "restore its saved state",
        (qmp) => restoreState(qmp, machine.migrationSocket, state),
      )
      // Connected before the guest runs again, so that it never sees its host gone.
      const channel = yield* agentChannel
      yield* withQmp(
        machine,
        "resume",
        (qmp) => qmp.execute("cont").pipe(Effect.mapError(qmpFailed("resume"))),
      )
      return {
        client: yield* connectAgent(channel, { helloTimeout, greet: true }),
        start: "restored",
      }
    }
    const client = yield* connectAgent(yield* agentChannel, { helloTimeout })
    if (state === undefined) return { client, start: "booted" }
    // The agent's first command costs it a module load that the saved state then holds.
    yield* client.exec({ argv: ["true"] })
    // A state that cannot be saved (a full disk) only costs the next build its boot.
    const saved = yield* withQmp(
      machine,
      "save its state",
      (qmp) => saveState(qmp, machine.migrationSocket, state),
    ).pipe(Effect.either)
    return saved._tag === "Right"
      ? { client, start: "booted and saved" }
      : { client, start: "booted", notSaved: saved.left.reason }
  })

/**
 * Give the guest the build's disk (hot-plugged over QMP) and have its agent set the clock,
 * reseed its RNG from host randomness, mount the context and wait for the disk.
 */
const attachBuild = (
  machine: Machine,
  client: AgentClient,
): Effect.Effect<void, VmError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* withQmp(machine, "attach its disk", (qmp) =>
      Effect.forEach(
        attachDisk(machine.disk),
        ([command, args]) => qmp.execute(command, args),
        { discard: true },
      ).pipe(Effect.mapError(qmpFailed("attach its disk"))))
    const tail = new OutputTail()
    const seed = new Uint8Array(32)
    crypto.getRandomValues(seed)
    const code = yield* client.exec({
      argv: [
        AGENT_BUILTIN.attach,
        String(Date.now()),
        Array.from(seed, (byte) => byte.toString(16).padStart(2, "0")).join(""),
        GUEST_DISK,
      ],
      onOutput: (_stream, chunk) => Effect.sync(() => tail.push(chunk)),
    })
    if (code !== 0) {
      return yield* new VmBootFailed({
        operation: "attach its disk",
        reason: tail.lines().join("; ") || `the agent's attach exited with status ${code}`,
      })
    }
  })

/**
 * Start QEMU and have the helper VM ready for a build, for `timeoutSeconds` at most: booted (the
 * agent's hello awaited) or restored from `plan.state`, then saved when the plan says so, then
 * given the build's disk and context (attachDisk, and the agent's attach).
 */
export const bootOnce = (
  machine: Machine,
  timeoutSeconds: number,
  plan: BootPlan = {},
): Effect.Effect<
  BootedVm,
  VmError,
  Scope.Scope | CommandExecutor.CommandExecutor | FileSystem.FileSystem | Path.Path
> =>
  Effect.gen(function* () {
    const argv = qemuArgv(machine, { incoming: plan.state?.restore === true })
    const process = yield* startQemu(argv, machine.qmpSocket).pipe(
      Effect.mapError((missing) =>
        new VmBootFailed({ operation: "boot", reason: missing.message })
      ),
    )
    const exited = Effect.gen(function* () {
      return yield* new VmBootFailed({
        operation: "boot",
        reason: yield* qemuExitReason(process),
        log: yield* consoleTail(machine.consoleLog),
      })
    })
    // The agent's own limit is a little longer, so that the boot timeout below speaks first.
    const ready = Effect.tap(
      agentUp(machine, plan.state, Duration.seconds(timeoutSeconds + 1)),
      ({ client }) => attachBuild(machine, client),
    )
    // The first to end, success or failure, decides (raceAll would wait for a success).
    const stopped = plan.silenceSeconds === undefined
      ? exited
      : Effect.raceFirst(exited, silentConsole(machine, plan.silenceSeconds))
    const up = yield* Effect.raceFirst(ready, stopped).pipe(
      Effect.timeout(Duration.seconds(timeoutSeconds)),
      Effect.catchTag("TimeoutException", () =>
        Effect.flatMap(consoleTail(machine.consoleLog), (log) =>
          new VmBootFailed({
            operation: "boot",
            reason:
              `the guest did not come up within ${timeoutSeconds} s under ${machine.engine.toUpperCase()}`,
            log,
          }))),
      // The agent channel closing usually means the guest stopped: say so, with its console.
      Effect.catchTag("AgentChannelBroken", (error) =>
        Effect.gen(function* () {
          const stopped = yield* awaitExit(process, "2 seconds")
          return yield* new VmBootFailed({
            operation: "boot",
            reason: stopped
              ? "the guest stopped before its agent started"
              : `the guest's agent did not start (${error.reason})`,
            log: yield* consoleTail(machine.consoleLog),
            cause: error,
          })
        })),
    )
    return { process, machine, ...up } satisfies BootedVm
  })

/**
 * The end of a VM after success: unmount, sync and power off through the agent, and wait for
 * QEMU to exit, so that the qcow2 is complete and closed. After a failure, or when that does not
 * work, startQemu's finalizers stop QEMU: quit, then SIGTERM, then SIGKILL, each with a deadline.
 */
export const stopVm = (
  booted: BootedVm,
  exit: Exit.Exit<unknown, unknown>,
  reporter: ReporterShape,
) =>
  Effect.gen(function* () {
    if (Exit.isSuccess(exit)) {
      const release = commandFor(GuestOperation.Release())
      const released = yield* atMost(
        booted.client.exec({ argv: release.argv }).pipe(
          Effect.filterOrFail((code) => code === 0, () => "failed"),
        ),
        "60 seconds",
      )
      if (released._tag === "Left") {
        yield* reporter.warn("The helper VM could not unmount the image cleanly")
      }
      yield* atMost(booted.client.shutdown, "30 seconds")
      if (yield* awaitExit(booted.process, "30 seconds")) return
      yield* reporter.warn("The helper VM did not power off; stopping QEMU")
    }
    // Otherwise QEMU is stopped by startQemu's finalizers, which run right after this one.
  })
