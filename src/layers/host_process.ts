/**
 * Host processes, through @effect/platform's Command: short tools (qemu-img, ...) run to
 * completion, and long-running ones (the helper VM's QEMU) as scoped resources. Always argv
 * arrays, never a host shell.
 */
import * as Command from "@effect/platform/Command"
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { atMost, succeedsWithin } from "./deadline.ts"
import process from "node:process"

/** The first executable file `program` in `$PATH`'s directories: its path and stat. */
export const findOnPath = (
  program: string,
): Effect.Effect<
  Option.Option<{ readonly path: string; readonly info: FileSystem.File.Info }>,
  never,
  FileSystem.FileSystem
> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    for (const dir of (process.env.PATH ?? "").split(":")) {
      if (dir === "") continue
      const path = `${dir}/${program}`
      const info = yield* Effect.option(fs.stat(path))
      if (info._tag === "Some" && info.value.type === "File" && (info.value.mode & 0o111) !== 0) {
        return Option.some({ path, info: info.value })
      }
    }
    return Option.none()
  })

/** Whether `program` is an executable file in one of `$PATH`'s directories. */
export const onPath = (program: string): Effect.Effect<boolean, never, FileSystem.FileSystem> =>
  Effect.map(findOnPath(program), Option.isSome)

/** The Debian package of each program transient runs on the host. */
export const PACKAGE_OF: Readonly<Record<string, string>> = {
  "qemu-img": "qemu-utils",
  "qemu-system-x86_64": "qemu-system-x86",
  setpriv: "util-linux",
}

/**
 * `argv` run so that the kernel SIGKILLs it when transient dies, however it dies (`kill -9`, the
 * OOM killer): nothing it starts can outlive it. setpriv sets the parent-death signal and then
 * execs `argv`, which keeps its pid; it exits 127 when `argv[0]` cannot be run.
 */
export const diesWithParent = (
  argv: readonly [string, ...Array<string>],
): readonly [string, ...Array<string>] => ["setpriv", "--pdeathsig", "KILL", "--", ...argv]

/** Whether an exit of a `diesWithParent` process says that its program is not installed. */
export const programMissing = (code: number, stderr: string): boolean =>
  code === 127 && /setpriv: failed to execute/.test(stderr)

/** A program that is not installed. */
export class ToolMissing extends Data.TaggedError("ToolMissing")<{ readonly program: string }> {
  override get message() {
    const pkg = PACKAGE_OF[this.program] ?? this.program
    return `${this.program} is not installed (install ${pkg}, e.g. \`apt-get install ${pkg}\`)`
  }
}

/** The outcome of a tool run to completion. */
export interface ToolResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** The last `count` non-empty lines of `text`. */
export const lastLines = (text: string, count: number): ReadonlyArray<string> =>
  text.split("\n").map((line) => line.trimEnd()).filter((line) => line !== "").slice(-count)

const commandOf = (argv: readonly [string, ...Array<string>]) => Command.make(...argv)

const missingOr = (program: string) => (error: PlatformError) =>
  error._tag === "SystemError" && error.reason === "NotFound" && error.method === "spawn"
    ? Effect.fail(new ToolMissing({ program }))
    : Effect.die(error)

/**
 * A process's exit status: its code, or 128+N when signal N killed it (the platform reports
 * only the signal's name then, so the status says "killed by a signal" with 128 + its number).
 */
const statusOf = (process: CommandExecutor.Process): Effect.Effect<number> =>
  process.exitCode.pipe(
    Effect.map(Number),
    Effect.catchAll((error) => Effect.succeed(128 + signalNumber(signalName(error.message)))),
  )

const SIGNALS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGABRT: 6,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGTERM: 15,
}

/** The signal named in the platform's description of a killed process (display only). */
const signalName = (description: string): string => /\bSIG[A-Z0-9]+\b/.exec(description)?.[0] ?? ""

const signalNumber = (name: string): number => SIGNALS[name] ?? 0

/** An exit status in words: `status 1`, or `signal SIGKILL` for 128+9. */
export const describeStatus = (status: number): string => {
  const signal = Object.entries(SIGNALS).find(([, number]) => 128 + number === status)?.[0]
  return signal === undefined ? `status ${status}` : `signal ${signal}`
}

const decodeAll = (
  stream: Stream.Stream<Uint8Array, PlatformError>,
  onText: (text: string) => Effect.Effect<void> = () => Effect.void,
) =>
  Stream.runCollect(Stream.tap(Stream.decodeText(stream), onText)).pipe(
    Effect.map((chunks) => Chunk.join(chunks, "")),
    Effect.orElseSucceed(() => ""),
  )

export interface RunToolOptions {
  /** Fed to the tool's standard input. */
  readonly stdin?: Stream.Stream<Uint8Array, PlatformError>
  /** Sees the tool's standard output as it comes (a progress meter), besides the result. */
  readonly onStdout?: (text: string) => Effect.Effect<void>
}

/**
 * Run `argv` to completion and collect its output; with `stdin`, the stream is fed to it.
 * Interrupting the effect kills the process.
 */
export const runTool = (
  argv: readonly [string, ...Array<string>],
  options: RunToolOptions = {},
): Effect.Effect<ToolResult, ToolMissing, CommandExecutor.CommandExecutor> =>
  Effect.scoped(
    Effect.gen(function* () {
      const command = options.stdin === undefined
        ? commandOf(argv)
        : Command.stdin(commandOf(argv), options.stdin)
      const process = yield* Command.start(command).pipe(Effect.catchAll(missingOr(argv[0])))
      const [stdout, stderr, code] = yield* Effect.all(
        [decodeAll(process.stdout, options.onStdout), decodeAll(process.stderr), statusOf(process)],
        { concurrency: "unbounded" },
      )
      return { code, stdout, stderr }
    }),
  )

/** A long-running host process. */
export interface RunningProcess {
  readonly pid: number
  /** Waits for the exit status (128+N when killed by signal N). */
  readonly exited: Effect.Effect<number>
  /** Whether the process has exited. */
  readonly hasExited: Effect.Effect<boolean>
  /** Send a signal; nothing happens if the process is gone. */
  readonly kill: (signal: CommandExecutor.Signal) => Effect.Effect<void>
  /** The last few KiB the process wrote on stderr. */
  readonly stderrTail: Effect.Effect<string>
}

const STDERR_TAIL_BYTES = 16 * 1024

/**
 * Start a long-running process whose stdout is discarded and whose stderr is kept (bounded).
 * Closing the scope makes sure it is gone within a bounded time whatever state it is in: it is
 * given `gracePeriod` after SIGTERM, then SIGKILLed (which ends even a stopped process).
 */
export const startProcess = (
  argv: readonly [string, ...Array<string>],
  options: { readonly gracePeriod: Duration.DurationInput },
): Effect.Effect<RunningProcess, ToolMissing, CommandExecutor.CommandExecutor | Scope.Scope> =>
  Effect.gen(function* () {
    const process = yield* Command.start(commandOf(argv)).pipe(
      Effect.catchAll(missingOr(argv[0])),
    )
    let tail = ""
    yield* Stream.runDrain(process.stdout).pipe(Effect.ignore, Effect.forkScoped)
    yield* Stream.decodeText(process.stderr).pipe(
      Stream.runForEach((text) =>
        Effect.sync(() => {
          tail = (tail + text).slice(-STDERR_TAIL_BYTES)
        })
      ),
      Effect.ignore,
      Effect.forkScoped,
    )
    // One watcher for the exit status, so that waiting for it can be cut short (by a race, a
    // deadline) any number of times without losing it.
    const status = yield* Deferred.make<number>()
    yield* statusOf(process).pipe(Effect.intoDeferred(status), Effect.forkScoped)
    const exited = Deferred.await(status)
    const hasExited = process.isRunning.pipe(Effect.map((running) => !running), Effect.orDie)
    // The platform's kill sends the signal, then waits for the exit: the caller decides how
    // long to wait (awaitExit), so the wait is cut short here, also inside a finalizer.
    const kill = (signal: CommandExecutor.Signal) =>
      Effect.flatMap(
        hasExited,
        (done) => done ? Effect.void : Effect.asVoid(atMost(process.kill(signal), "10 millis")),
      )
    const running: RunningProcess = {
      pid: Number(process.pid),
      exited,
      hasExited,
      kill,
      stderrTail: Effect.sync(() => tail),
    }
    // Runs before the platform's own release, which waits for the exit without a deadline.
    yield* Effect.addFinalizer(() => stopProcess(running, options.gracePeriod))
    return running
  })

/** Wait for a process to exit, at most `timeout`; whether it did. Works inside finalizers. */
export const awaitExit = (
  process: RunningProcess,
  timeout: Duration.DurationInput,
): Effect.Effect<boolean> => succeedsWithin(process.exited, timeout)

/** SIGTERM, `gracePeriod`, then SIGKILL: a process is gone when this returns. */
export const stopProcess = (
  process: RunningProcess,
  gracePeriod: Duration.DurationInput,
): Effect.Effect<void> =>
  Effect.gen(function* () {
    if (yield* process.hasExited) return
    yield* process.kill("SIGTERM")
    if (yield* awaitExit(process, gracePeriod)) return
    yield* process.kill("SIGKILL")
    yield* awaitExit(process, "10 seconds")
  })

/**
 * The bytes free for this user on the filesystem holding `directory` (df's "avail"); none when
 * df cannot tell.
 */
export const freeBytes = (
  directory: string,
): Effect.Effect<number | undefined, never, CommandExecutor.CommandExecutor> =>
  runTool(["df", "-B1", "--output=avail", directory]).pipe(
    Effect.map((result) => {
      const value = Number(result.stdout.trim().split("\n").at(-1))
      return result.code === 0 && Number.isFinite(value) ? value : undefined
    }),
    Effect.orElseSucceed(() => undefined),
  )
