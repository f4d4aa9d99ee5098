/**
 * Host processes of the QEMU layers: short tools (qemu-img) run to completion, and the helper
 * VM's qemu-system process as a scoped resource. Always argv arrays, never a host shell.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** The outcome of a tool run to completion. */
export interface ToolResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** A program that is not installed, with the package that provides it. */
export class ToolMissing {
  readonly _tag = "ToolMissing"
  constructor(readonly program: string) {}
}

/** The Debian package of each program the QEMU layers run. */
export const PACKAGE_OF: Readonly<Record<string, string>> = {
  "qemu-img": "qemu-utils",
  "qemu-system-x86_64": "qemu-system-x86",
}

/** `program is not installed (install PACKAGE)`: the one message for a missing tool. */
export const missingToolReason = (program: string): string =>
  `${program} is not installed (install ${PACKAGE_OF[program] ?? program}, e.g. ` +
  `\`apt-get install ${PACKAGE_OF[program] ?? program}\`)`

/**
 * Run `argv` to completion with stdin closed. Interrupting the effect kills the process.
 */
export const runTool = (
  argv: readonly [string, ...Array<string>],
): Effect.Effect<ToolResult, ToolMissing> =>
  Effect.async<ToolResult, ToolMissing>((resume, signal) => {
    let child: Deno.ChildProcess
    try {
      child = new Deno.Command(argv[0], {
        args: argv.slice(1),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal,
      }).spawn()
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        return resume(Effect.fail(new ToolMissing(argv[0])))
      }
      return resume(Effect.die(error))
    }
    const text = new TextDecoder()
    child.output().then(
      (output) =>
        resume(Effect.succeed({
          code: output.code,
          stdout: text.decode(output.stdout),
          stderr: text.decode(output.stderr),
        })),
      (error) => resume(Effect.die(error)),
    )
  })

/** The last `count` non-empty lines of `text`. */
export const lastLines = (text: string, count: number): ReadonlyArray<string> =>
  text.split("\n").map((line) => line.trimEnd()).filter((line) => line !== "").slice(-count)

export interface SpawnedProcess {
  readonly pid: number
  /** Resolves with the exit status (128+N when killed by signal N) once the process is gone. */
  readonly exited: Promise<number>
  /** Whether the process has exited. */
  readonly hasExited: () => boolean
  readonly kill: (signal: Deno.Signal) => void
  /** The last few KiB the process wrote on stderr. */
  readonly stderrTail: () => string
}

/**
 * Start a long-running process whose output goes to files (or nowhere). Closing the scope makes
 * sure it is gone: it is given `gracePeriod` to exit after SIGTERM, then SIGKILLed.
 */
export const spawnScoped = (
  argv: readonly [string, ...Array<string>],
  options: { readonly gracePeriod: Duration.DurationInput },
): Effect.Effect<SpawnedProcess, ToolMissing, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      let child: Deno.ChildProcess
      try {
        child = new Deno.Command(argv[0], {
          args: argv.slice(1),
          stdin: "null",
          stdout: "null",
          stderr: "piped",
        }).spawn()
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return Effect.fail(new ToolMissing(argv[0]))
        return Effect.die(error)
      }
      let done = false
      // stderr is drained and kept (bounded) so that a process dying at start can explain why.
      const stderr: Array<string> = []
      void child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
        new WritableStream({
          write(chunk) {
            stderr.push(chunk)
            if (stderr.length > 64) stderr.shift()
          },
        }),
      ).catch(() => {})
      const exited = child.status.then((status) => {
        done = true
        return status.signal === null ? status.code : 128 + signalNumber(status.signal)
      })
      const process: SpawnedProcess = {
        pid: child.pid,
        exited,
        hasExited: () => done,
        kill: (signal) => {
          if (done) return
          try {
            child.kill(signal)
          } catch {
            // It exited in between.
          }
        },
        stderrTail: () => stderr.join(""),
      }
      return Effect.succeed(process)
    }),
    (process) =>
      Effect.gen(function* () {
        if (process.hasExited()) return
        process.kill("SIGTERM")
        const gone = yield* Effect.promise(() => process.exited).pipe(
          Effect.timeout(options.gracePeriod),
          Effect.option,
        )
        if (gone._tag === "None") {
          process.kill("SIGKILL")
          yield* Effect.promise(() => process.exited)
        }
      }),
  )

const SIGNALS: Partial<Record<Deno.Signal, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGABRT: 6,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGTERM: 15,
}

const signalNumber = (signal: Deno.Signal): number => SIGNALS[signal] ?? 0

/** Wait for a process to exit, at most `timeout`; whether it did. */
export const awaitExit = (
  process: SpawnedProcess,
  timeout: Duration.DurationInput,
): Effect.Effect<boolean> =>
  Effect.promise(() => process.exited).pipe(
    Effect.timeout(Duration.decode(timeout)),
    Effect.as(true),
    Effect.orElseSucceed(() => false),
  )
