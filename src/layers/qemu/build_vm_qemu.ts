/**
 * BuildVm over QEMU: the helper VM (our kernel + initramfs) with the working disk on virtio-blk,
 * BUILD_DIR on virtio-9p, the agent on a virtio-serial port, QMP and the serial console on files
 * and sockets in a private temporary directory (qemu_machine.ts). Under `--accel auto` a guest
 * that does not come up under KVM is retried on TCG (vm_boot.ts); the session runs guest
 * operations through the agent (vm_session.ts).
 *
 * The VM is a scoped resource: closing the scope after success unmounts the image, syncs and
 * powers the guest off; after a failure or an interruption QEMU is told to quit. Either way the
 * process is killed if it lingers, and the temporary directory removed.
 */
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { GuestCommandFailed, VmBootFailed, type VmError, VmHalted } from "../../domain/errors/vm.ts"
import { type BootOptions, BuildVm } from "../../services/build_vm.ts"
import { Reporter, type ReporterShape } from "../../services/reporter.ts"
import { Terminal, type TerminalShape } from "../../services/terminal.ts"
import { defaultCpus, enginesFor, kvmUsable } from "./accel.ts"
import { fastFirmware } from "./firmware.ts"
import { watchHostIo } from "./io_watch.ts"
import {
  DISK_ID,
  GUEST_DEVICES,
  type GuestImages,
  type Machine,
  QEMU_SYSTEM,
} from "./qemu_machine.ts"
import type { QmpClient, QmpError } from "./qmp.ts"
import {
  type BootedVm,
  bootOnce,
  consoleTail,
  qemuExitReason,
  stopVm,
  vmDirectory,
} from "./vm_boot.ts"
import { makeSession } from "./vm_session.ts"
import { dropState, planState, qemuIdentity, stateInputs, type StatePlan } from "./vm_state.ts"

/** Under `--accel auto`, how long a KVM guest gets before the retry on TCG. */
const KVM_PROBE_SECONDS = 10
/**
 * Under `--accel auto`, how long a KVM guest may stay silent: init writes its first console line
 * well within a second when KVM works, while a guest that hangs under KVM writes nothing at all.
 */
const KVM_SILENCE_SECONDS = 4

/** Fails when QEMU exits while a session uses it (killed, crashed), with its console's end. */
const qemuExited = (booted: BootedVm) =>
  Effect.gen(function* () {
    return yield* new VmHalted({
      operation: "keep running",
      reason: yield* qemuExitReason(booted.process),
      log: yield* consoleTail(booted.machine.consoleLog),
    })
  })

/**
 * Make `next` the working disk's active file, the current one becoming its (read-only) backing
 * file: an external snapshot, which QEMU takes between two guest writes.
 */
const snapshotDisk = (qmp: Effect.Effect<QmpClient, QmpError>) => {
  // The node the guest writes: the attached disk, then each snapshot's new file.
  let top = DISK_ID
  let taken = 0
  return (next: string) =>
    Effect.flatMap(qmp, (client) => {
      const node = `${DISK_ID}-${taken + 1}`
      return client.execute("blockdev-snapshot-sync", {
        "node-name": top,
        "snapshot-file": next,
        "snapshot-node-name": node,
        format: "qcow2",
        mode: "absolute-paths",
      }).pipe(Effect.tap(() => {
        top = node
        taken += 1
      }))
    }).pipe(
      Effect.asVoid,
      Effect.mapError((error) =>
        new GuestCommandFailed({ operation: "snapshot the disk", reason: error.message })
      ),
    )
}

/** How long a restore from a saved state may take before the VM is booted afresh instead. */
const RESTORE_SECONDS = 20

export interface BuildVmQemuOptions {
  /** Where the helper VM's saved states are (vm_state.ts); without it, every VM boots. */
  readonly stateDirectory?: string
}

type Platform = CommandExecutor.CommandExecutor | FileSystem.FileSystem | Path.Path

/** What a boot needs, resolved when the layer is built. */
interface BootDeps {
  readonly reporter: ReporterShape
  readonly terminal: TerminalShape
  readonly platform: Context.Context<Platform>
  /** The saved state `machine` restores from or is saved to, if any. */
  readonly statePlan: (machine: Machine) => Effect.Effect<StatePlan | undefined, never>
}

/** The machine of the `index`th engine tried, its sockets and console in `dir`. */
const machineFor = (
  options: BootOptions,
  engine: Machine["engine"],
  index: number,
  files: {
    readonly dir: string
    readonly path: Path.Path
    readonly images: GuestImages
    readonly firmware: Machine["firmware"] | undefined
  },
): Machine => {
  const { dir, path, firmware } = files
  return {
    engine,
    ...(firmware === undefined ? {} : { firmware }),
    cpus: options.cpus ?? defaultCpus(engine),
    memoryMiB: options.memoryMiB,
    images: files.images,
    disk: options.disk,
    context: options.context,
    network: options.network,
    agentSocket: path.join(dir, `agent-${index}.sock`),
    shellSocket: path.join(dir, `shell-${index}.sock`),
    qmpSocket: path.join(dir, `qmp-${index}.sock`),
    migrationSocket: path.join(dir, `migration-${index}.sock`),
    consoleLog: path.join(dir, `console-${index}.log`),
  }
}

/**
 * Start `machine` in a scope of its own under `scope`: restored from its saved state when there
 * is one, booted (and its state saved) otherwise. A state that does not restore is dropped and
 * the machine booted afresh. The attempt's scope is left for the caller to close.
 */
const startMachine = Effect.fn("BuildVm.start")(function* (
  deps: BootDeps,
  scope: Scope.Scope,
  machine: Machine,
  timeouts: { readonly seconds: number; readonly silence: { readonly silenceSeconds?: number } },
) {
  const { silence } = timeouts
  const state = yield* deps.statePlan(machine)
  const started = Date.now()
  let attempt = yield* Scope.fork(scope, ExecutionStrategy.sequential)
  let booted = yield* bootOnce(
    machine,
    state?.restore === true ? Math.min(timeouts.seconds, RESTORE_SECONDS) : timeouts.seconds,
    state?.restore === true ? { state } : { ...silence, ...(state ? { state } : {}) },
  ).pipe(Scope.extend(attempt), Effect.provide(deps.platform), Effect.either)
  if (booted._tag === "Left" && state?.restore === true) {
    // A state that does not restore is never tried again: boot afresh and save anew.
    yield* Scope.close(attempt, Exit.fail(booted.left))
    yield* dropState(state).pipe(Effect.provide(deps.platform))
    yield* deps.reporter.warn(
      `The helper VM's saved state did not restore (${booted.left.reason}); booting it`,
    )
    attempt = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    booted = yield* bootOnce(machine, timeouts.seconds, {
      ...silence,
      state: { ...state, restore: false },
    }).pipe(Scope.extend(attempt), Effect.provide(deps.platform), Effect.either)
  }
  return { attempt, booted, started }
})

/** How the VM came up, and how long it took. */
const startedMessage = (start: BootedVm["start"], seconds: string) =>
  start === "restored"
    ? `helper VM restored from its saved state in ${seconds} s`
    : start === "booted"
    ? `helper VM booted in ${seconds} s`
    : `helper VM booted in ${seconds} s; its state is saved for the next builds`

/** The session of a VM that came up, stopped when `attempt` closes. */
const sessionOf = Effect.fn("BuildVm.session")(function* (
  deps: BootDeps,
  attempt: Scope.CloseableScope,
  booted: BootedVm,
  started: number,
) {
  const { reporter, platform } = deps
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  yield* reporter.detail(startedMessage(booted.start, seconds))
  if (booted.notSaved !== undefined) {
    yield* reporter.warn(
      `The helper VM's state could not be saved (${booted.notSaved}); ` +
        "the next build boots it again",
    )
  }
  yield* Scope.addFinalizerExit(
    attempt,
    (exit) => stopVm(booted, exit, reporter).pipe(Effect.provide(platform)),
  )
  // Added after stopVm, so it ends first: stopVm needs QMP for itself.
  const hostIo = yield* watchHostIo(booted.machine).pipe(Scope.extend(attempt))
  const halted = Effect.raceFirst(hostIo.halted, qemuExited(booted).pipe(Effect.provide(platform)))
  return makeSession(booted.client, {
    terminal: deps.terminal,
    socket: booted.machine.shellSocket,
    tty: GUEST_DEVICES.shellTty,
  }, { halted, snapshotDisk: snapshotDisk(hostIo.qmp) })
})

/** BuildVm over QEMU, booting (or restoring) the guest files that `images` finds. */
export const makeBuildVmQemu = <R>(
  images: Effect.Effect<GuestImages, VmError, R>,
  options: BuildVmQemuOptions = {},
): Layer.Layer<BuildVm, VmError, R | Reporter | Terminal | Platform> =>
  Layer.effect(
    BuildVm,
    Effect.gen(function* () {
      const reporter = yield* Reporter
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const platform = yield* Effect.context<Platform>()
      // Found when the layer is built, so a missing artifact stops a build before it starts.
      const guest = yield* images
      const firmware = yield* fastFirmware(QEMU_SYSTEM)
      const qemu = yield* Effect.cached(qemuIdentity.pipe(Effect.provide(platform)))
      const { stateDirectory } = options
      const deps: BootDeps = {
        reporter,
        terminal: yield* Terminal,
        platform,
        statePlan: (machine) =>
          Effect.gen(function* () {
            if (stateDirectory === undefined) return undefined
            const inputs = stateInputs(yield* qemu, machine)
            return inputs === undefined
              ? undefined
              : yield* planState(stateDirectory, inputs).pipe(Effect.provide(platform))
          }),
      }

      const boot = Effect.fn("BuildVm.boot")(function* (options: BootOptions) {
        const scope = yield* Effect.scope
        const dir = yield* vmDirectory.pipe(
          Effect.provideService(FileSystem.FileSystem, fs),
          Effect.provideService(Path.Path, path),
          Effect.mapError((error) =>
            new VmBootFailed({ operation: "boot", reason: error.message, cause: error })
          ),
        )
        const kvm = yield* kvmUsable.pipe(Effect.provideService(FileSystem.FileSystem, fs))
        if (options.accel === "kvm" && !kvm) {
          return yield* new VmBootFailed({
            operation: "boot",
            reason: "KVM is not usable here (/dev/kvm cannot be opened); use --accel tcg",
          })
        }
        const engines = enginesFor(options.accel, kvm)
        for (const [index, engine] of engines.entries()) {
          const machine = machineFor(options, engine, index, { dir, path, images: guest, firmware })
          const isLast = index === engines.length - 1
          const { attempt, booted, started } = yield* startMachine(deps, scope, machine, {
            seconds: isLast
              ? options.bootTimeoutSeconds
              : Math.min(options.bootTimeoutSeconds, KVM_PROBE_SECONDS),
            silence: isLast ? {} : { silenceSeconds: KVM_SILENCE_SECONDS },
          })
          if (booted._tag === "Right") return yield* sessionOf(deps, attempt, booted.right, started)
          yield* Scope.close(attempt, Exit.fail(booted.left))
          if (isLast) return yield* booted.left
          yield* reporter.warn(
            `The helper VM failed under KVM (${booted.left.reason}); retrying with TCG ` +
              "(slower; use --accel tcg to skip KVM)",
          )
        }
        return yield* new VmBootFailed({ operation: "boot", reason: "no accelerator to try" })
      })
      return BuildVm.of({ identity: guest.inputs ?? "unversioned", boot })
    }),
  )
