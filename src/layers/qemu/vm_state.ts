/**
 * Saved states of the helper VM. Booting it under TCG takes seconds (the kernel, the modules,
 * Deno starting the agent); loading the state of a VM that had done all that takes a fraction
 * of a second. So the first build of a machine boots it, lets its agent run one command, and
 * saves its state (QMP `migrate`) before attaching the build's disk and context; later builds
 * start from that state (`-incoming defer` + `migrate-incoming`) and attach theirs.
 *
 *   CACHE/helper-vm/KEY.state   a line naming the format, a line of JSON with what KEY digests,
 *                               then QEMU's migration stream of such a VM (via KEY.PID.UUID.part
 *                               + rename)
 *
 * KEY digests everything the state depends on: QEMU (its version line and the binary's size and
 * mtime) and the host's CPU, the guest artifacts (their inputs' digest) and the machine
 * (accelerator, vCPUs, memory, network, firmware). Another QEMU or another artifact build gives
 * another key; a state that QEMU refuses, or whose agent does not answer, is deleted and the VM
 * booted afresh. A state says what it was saved for, and one saved for another machine (a cache
 * moved or merged by hand, a file renamed) is not restored, whatever its name. The newest few states are kept; a state is used read-only, so builds share it.
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { createHash } from "node:crypto"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { VmBootFailed } from "../../domain/errors/vm.ts"
import { findOnPath, runTool } from "../host_process.ts"
import { OWN_PID, ownedPath, sweepStale } from "../stale_files.ts"
import type { Machine } from "./qemu_machine.ts"
import { QEMU_SYSTEM } from "./qemu_machine.ts"
import type { QmpClient, QmpError } from "./qmp.ts"

/** Bumped when what a saved VM has done before its state was taken, or the file, changes. */
const STATE_FORMAT = 2
/** The first line of a state file. */
const STATE_MAGIC = `transient helper-VM state ${STATE_FORMAT}\n`
/** How many states (machines) a cache directory keeps. */
const KEEP_STATES = 3
/** How long a save or a restore may take before it is given up. */
const MIGRATION_SECONDS = 60

/** Where a machine's state is, whether it is there to restore, and what it must be saved for. */
export interface StatePlan {
  readonly file: string
  readonly restore: boolean
  /** What the state's key digests, as the state's header records it (one line of JSON). */
  readonly inputs: string
}

type StateMachine = Pick<
  Machine,
  "engine" | "cpus" | "memoryMiB" | "network" | "firmware" | "images"
>

/** What `machine`'s state under `qemu` depends on, one line of JSON; none for unversioned artifacts. */
export const stateInputs = (qemu: string, machine: StateMachine): string | undefined => {
  // Unversioned artifacts (a development tree) could change under a state: never save one.
  if (machine.images.inputs === undefined) return undefined
  const parts = {
    format: STATE_FORMAT,
    qemu,
    inputs: machine.images.inputs,
    engine: machine.engine,
    cpus: machine.cpus,
    memoryMiB: machine.memoryMiB,
    network: machine.network,
    firmware: machine.firmware ?? null,
  }
  return JSON.stringify(parts)
}

/** The key a state saved for `inputs` is filed under. */
const keyOf = (inputs: string): string => createHash("sha256").update(inputs).digest("hex")

/** The key of `machine`'s state under `qemu` (qemuIdentity); none for unversioned artifacts. */
export const stateKey = (qemu: string, machine: StateMachine): string | undefined => {
  const inputs = stateInputs(qemu, machine)
  return inputs === undefined ? undefined : keyOf(inputs)
}

/** The header a state file starts with. */
const stateHeader = (inputs: string): Uint8Array =>
  new TextEncoder().encode(`${STATE_MAGIC}${inputs}\n`)

/**
 * The length of `file`'s header when it is the header a state saved for `inputs` starts with;
 * else why the state is not this machine's.
 */
const checkHeader = async (file: Deno.FsFile, inputs: string): Promise<number> => {
  const expected = stateHeader(inputs)
  const found = new Uint8Array(expected.length)
  let length = 0
  while (length < found.length) {
    const read = await file.read(found.subarray(length))
    if (read === null) break
    length += read
  }
  const magic = new TextEncoder().encode(STATE_MAGIC)
  if (length < magic.length || magic.some((byte, at) => found[at] !== byte)) {
    throw new Error("it is not a state this version saved")
  }
  if (length < found.length || expected.some((byte, at) => found[at] !== byte)) {
    throw new Error("it was saved for another machine, QEMU or helper VM")
  }
  return expected.length
}

/**
 * QEMU and the host as a state depends on them: QEMU's version line, its binary's path, size
 * and mtime, and the host CPU's model and features.
 */
export const qemuIdentity: Effect.Effect<
  string,
  never,
  CommandExecutor.CommandExecutor | FileSystem.FileSystem
> = Effect.gen(function* () {
  const fs = yield* FileSystem.FileSystem
  const version = yield* runTool([QEMU_SYSTEM, "--version"]).pipe(
    Effect.map((result) => result.code === 0 ? result.stdout.split("\n")[0] ?? "" : ""),
    Effect.orElseSucceed(() => ""),
  )
  const binary = Option.match(yield* findOnPath(QEMU_SYSTEM), {
    onNone: () => "",
    onSome: ({ path, info }) => `${path} ${info.size} ${mtimeMs(info)}`,
  })
  // A moved cache may land on another CPU, which a KVM guest (`-cpu host`) would not survive.
  const cpu = yield* fs.readFileString("/proc/cpuinfo").pipe(
    Effect.map((text) =>
      text.split("\n").filter((line) => /^(vendor_id|model name|flags)\s*:/.test(line))
        .slice(0, 3).join("\n")
    ),
    Effect.orElseSucceed(() => ""),
  )
  return `${version}\n${binary}\n${cpu}`
})

const STATE_NAME = /^[0-9a-f]{64}\.state$/

const mtimeMs = (info: FileSystem.File.Info): number =>
  Option.getOrElse(Option.map(info.mtime, (date) => date.getTime()), () => 0)

/** The states in `directory`: name, size and mtime. */
const listStates = (directory: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const names = (yield* fs.readDirectory(directory)).filter((name) => STATE_NAME.test(name))
    return yield* Effect.forEach(names, (name) =>
      Effect.map(fs.stat(`${directory}/${name}`), (info) => ({
        name,
        bytes: Number(info.size),
        mtime: mtimeMs(info),
      })))
  })

/**
 * `KEY.PID.UUID.part`: a state being written by process PID (older versions wrote `KEY.PID.part`),
 * owned through its lock file (stale_files.ts).
 */
const isPart = (name: string): boolean => /^[0-9a-f]{64}\.\d+(\.[0-9a-f-]{36})?\.part$/.test(name)

/**
 * The plan for `key` in `directory`: restore its state when there is one, else save one. The
 * parts of saves whose process was killed are removed first.
 */
export const planState = (
  directory: string,
  inputs: string,
): Effect.Effect<StatePlan, never, FileSystem.FileSystem | Path.Path> => {
  const key = keyOf(inputs)
  return Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    yield* fs.makeDirectory(directory, { recursive: true })
    yield* sweepStale(directory, isPart)
    const file = `${directory}/${key}.state`
    const restore = yield* fs.exists(file)
    // Its mtime says when it was last used: the least recently used go first.
    if (restore) yield* fs.utimes(file, new Date(), new Date())
    return { file, restore, inputs }
  }).pipe(
    Effect.orElseSucceed(() => ({ file: `${directory}/${key}.state`, restore: false, inputs })),
  )
}

/** Forget a state that did not restore. */
export const dropState = (
  plan: StatePlan,
): Effect.Effect<void, never, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.remove(plan.file)).pipe(Effect.ignore)

const failed = (operation: string, reason: string) => new VmBootFailed({ operation, reason })

/** A QMP command that failed, as the boot step `operation` failing. */
export const qmpFailed = (operation: string) => (error: QmpError): VmBootFailed =>
  failed(operation, error.message)

/** Poll `query-migrate` until the migration ends; fails unless it completed. */
const migrationDone = (qmp: QmpClient, operation: string) =>
  Effect.gen(function* () {
    for (;;) {
      const answer = yield* qmp.execute("query-migrate")
      const status = (answer as { status?: unknown; "error-desc"?: unknown }).status
      if (status === "completed") return
      if (status === "failed" || status === "cancelled") {
        const desc = (answer as { "error-desc"?: unknown })["error-desc"]
        return yield* failed(operation, `the migration ${status}${desc ? `: ${desc}` : ""}`)
      }
      yield* Effect.sleep("10 millis")
    }
  }).pipe(
    Effect.mapError((error) => error._tag === "QmpError" ? qmpFailed(operation)(error) : error),
    Effect.timeoutFail({
      duration: Duration.seconds(MIGRATION_SECONDS),
      onTimeout: () => failed(operation, `the migration took more than ${MIGRATION_SECONDS} s`),
    }),
  )

/**
 * Save the state of the running VM behind `qmp` to `plan.file`, through a unix socket at
 * `socket` that QEMU connects to, then let the VM go on. A save that fails leaves no file and
 * a running VM; the older states beyond the newest few are removed.
 */
export const saveState = (
  qmp: QmpClient,
  socket: string,
  plan: StatePlan,
): Effect.Effect<void, VmBootFailed, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const operation = "save its state"
    const part = yield* ownedPath(
      `${plan.file.slice(0, -".state".length)}.${OWN_PID}.${crypto.randomUUID()}.part`,
    ).pipe(Effect.mapError((error) => failed(operation, error.message)))
    // A restore that failed in this VM directory may have left QEMU's socket there.
    yield* fs.remove(socket).pipe(Effect.ignore)
    const listener = yield* Effect.acquireRelease(
      Effect.try({
        try: () => Deno.listen({ transport: "unix", path: socket }),
        catch: (error) => failed(operation, `cannot listen on ${socket} (${String(error)})`),
      }),
      (listener) => Effect.sync(() => listener.close()),
    )
    const written = Effect.tryPromise({
      try: async () => {
        const conn = await listener.accept()
        const file = await Deno.open(part, { write: true, createNew: true, mode: 0o600 })
        const header = stateHeader(plan.inputs)
        for (let at = 0; at < header.length;) at += await file.write(header.subarray(at))
        await conn.readable.pipeTo(file.writable)
      },
      catch: (error) => failed(operation, `cannot write ${part} (${String(error)})`),
    })
    const saved = Effect.gen(function* () {
      yield* qmp.execute("stop")
      yield* qmp.execute("migrate", { uri: `unix:${socket}` })
    }).pipe(
      Effect.mapError(qmpFailed(operation)),
      Effect.zipRight(Effect.all([written, migrationDone(qmp, operation)], {
        concurrency: "unbounded",
      })),
      Effect.zipRight(
        fs.rename(part, plan.file).pipe(
          Effect.mapError((error) => failed(operation, error.message)),
        ),
      ),
    )
    // Failed or interrupted: no part is left, and the VM is not left paused.
    const outcome = yield* Effect.exit(saved.pipe(Effect.onExit((exit) =>
      exit._tag === "Success" ? Effect.void : Effect.zipRight(
        qmp.execute("migrate_cancel").pipe(Effect.ignore),
        fs.remove(part).pipe(Effect.ignore),
      )
    )))
    yield* qmp.execute("cont").pipe(Effect.mapError(qmpFailed("resume")))
    if (outcome._tag === "Failure") {
      return yield* outcome
    }
    yield* pruneStates(path.dirname(plan.file))
  }).pipe(Effect.scoped)

/** Keep the newest KEEP_STATES states of `directory` (by mtime, which planState refreshes). */
const pruneStates = (directory: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const old = (yield* listStates(directory)).sort((a, b) => b.mtime - a.mtime).slice(KEEP_STATES)
    yield* Effect.forEach(old, ({ name }) => fs.remove(`${directory}/${name}`), { discard: true })
  }).pipe(Effect.ignore)

/**
 * Load `plan.file` into the QEMU behind `qmp`, started with `-incoming defer`, through a unix
 * socket at `socket`; the VM stays paused, for the caller to connect before `cont`.
 */
export const restoreState = (
  qmp: QmpClient,
  socket: string,
  plan: StatePlan,
): Effect.Effect<void, VmBootFailed> =>
  Effect.gen(function* () {
    const operation = "restore its saved state"
    const file = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => Deno.open(plan.file, { read: true }),
        catch: (error) => failed(operation, `cannot open ${plan.file} (${String(error)})`),
      }),
      (file) =>
        Effect.sync(() => {
          try {
            file.close()
          } catch {
            // Sending it closed it already.
          }
        }),
    )
    // Checked before QEMU sees a byte of it: the name alone does not make it this machine's.
    const header = yield* Effect.tryPromise({
      try: () => checkHeader(file, plan.inputs),
      catch: (error) => failed(operation, error instanceof Error ? error.message : String(error)),
    })
    yield* qmp.execute("migrate-incoming", { uri: `unix:${socket}` }).pipe(
      Effect.mapError(qmpFailed(operation)),
    )
    const sent = Effect.tryPromise({
      try: async () => {
        await file.seek(header, Deno.SeekMode.Start)
        const conn = await Deno.connect({ transport: "unix", path: socket })
        await file.readable.pipeTo(conn.writable)
      },
      catch: (error) => failed(operation, `cannot send ${plan.file} (${String(error)})`),
    })
    yield* Effect.all([sent, migrationDone(qmp, operation)], { concurrency: "unbounded" })
  }).pipe(Effect.scoped)

/** The directory of the saved states in a cache directory. */
export const statesIn = (cacheDirectory: string): string => `${cacheDirectory}/helper-vm`

/** Remove every saved state of `directory`; how many, and the bytes freed. */
export const removeStates = (
  directory: string,
): Effect.Effect<
  { readonly count: number; readonly bytes: number },
  never,
  FileSystem.FileSystem
> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const states = yield* listStates(directory).pipe(Effect.orElseSucceed(() => []))
    let count = 0
    let bytes = 0
    for (const state of states) {
      if ((yield* Effect.either(fs.remove(`${directory}/${state.name}`)))._tag === "Right") {
        count += 1
        bytes += state.bytes
      }
    }
    return { count, bytes }
  })
