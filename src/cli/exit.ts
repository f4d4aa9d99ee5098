/**
 * The CLI edge: an expected error becomes one line on stderr (a stack trace only with
 * --verbose) and an exit status; the runtime's teardown turns the program's Exit into the
 * status README documents, including how it was stopped (SIGINT 130, SIGTERM 143).
 */
import * as ValidationError from "@effect/cli/ValidationError"
import * as Cause from "effect/Cause"
import type * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { InvalidImagefile } from "../domain/errors/imagefile.ts"

/** A command already told the user what went wrong; exit with `code` and print nothing more. */
export class ExitWith extends Data.TaggedError("ExitWith")<{ readonly code: number }> {}

export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2
export const EXIT_INTERRUPTED = 130
export const EXIT_TERMINATED = 143

/** The one line to show for an expected error: its message, which every domain error has. */
export const describeError = (error: unknown): string => {
  if (error instanceof Error && error.message) return error.message
  if (typeof error === "object" && error !== null && "message" in error) {
    return String((error as { message: unknown }).message)
  }
  return String(error)
}

/**
 * An error's line, followed by the helper VM's last console or command output when the error
 * carries it: what a user needs to see why the VM failed.
 */
export const describeFailure = (error: unknown): string => {
  const log = hasLog(error) ? error.log : []
  return [describeError(error), ...log.map((line) => `  | ${line}`)].join("\n")
}

/** Whether `error` carries the last lines of a console or a command (VmError, RunFailed). */
const hasLog = (error: unknown): error is { readonly log: ReadonlyArray<string> } =>
  typeof error === "object" && error !== null && "log" in error && Array.isArray(error.log)

/** How the process was asked to stop, if it was. */
export type StopSignal = "SIGINT" | "SIGTERM"

/**
 * Decide the exit status of a finished command, printing its error line when it failed.
 * `published`: the command's image was published, which makes it a success however it ended.
 */
export const exitCodeOf = <E>(
  exit: Exit.Exit<unknown, E>,
  options: {
    readonly verbose: boolean
    readonly signal?: StopSignal | undefined
    readonly published?: boolean
  },
): number => {
  if (Exit.isSuccess(exit) || options.published === true) return 0
  const cause = exit.cause
  const stopped = options.signal === "SIGTERM" ? EXIT_TERMINATED : EXIT_INTERRUPTED
  if (Cause.isInterruptedOnly(cause)) {
    console.error(options.signal === "SIGTERM" ? "Terminated" : "Interrupted")
    return stopped
  }
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    // A command that was told to stop says so, then exits as stopped.
    if (error instanceof ExitWith) return options.signal === undefined ? error.code : stopped
    // @effect/cli has already printed usage errors with the help that fits them.
    if (ValidationError.isValidationError(error)) return EXIT_USAGE
    // The diagnostics say what is wrong and where; the last line counts them.
    if (error instanceof InvalidImagefile) console.error(error.rendered)
    console.error(`error: ${describeFailure(error)}`)
    if (options.verbose) console.error(Cause.pretty(cause))
    return EXIT_FAILURE
  }
  const defect = Cause.squash(cause)
  console.error(`error: internal error: ${describeError(defect)}`)
  if (options.verbose) console.error(Cause.pretty(cause))
  else console.error("(run again with --verbose for the details)")
  return EXIT_FAILURE
}

/**
 * `effect` with its failures told at the edge: an expected error is printed (with its cause's
 * trace under `verbose`) and becomes ExitWith, so nothing else prints it again. Interruption
 * passes through.
 */
export const atTheEdge = (verbose: boolean) =>
<A, E, R>(
  effect: Effect.Effect<A, E, R>,
): Effect.Effect<A, ExitWith, R> =>
  Effect.catchAllCause(effect, (cause) => {
    if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure) && failure.value instanceof ExitWith) {
      return Effect.fail(failure.value)
    }
    return Effect.sync(() => exitCodeOf(Exit.failCause(cause), { verbose })).pipe(
      Effect.flatMap((code) => Effect.fail(new ExitWith({ code }))),
    )
  })

/** SGR escapes (colours, bold), the only ones @effect/cli writes into its help and usage errors. */
// deno-lint-ignore no-control-regex -- ESC is the very character to match.
const SGR = /\x1b\[[0-9;]*m/g

const plain = (args: ReadonlyArray<unknown>) =>
  args.map((arg) => (typeof arg === "string" ? arg.replace(SGR, "") : arg))

/** Whether each output stream is a terminal, and whether NO_COLOR asks for plain text. */
export interface Terminals {
  readonly stdout: boolean
  readonly stderr: boolean
  readonly noColor: boolean
}

/**
 * `program` with its Console's log and error free of colour codes when they go to a pipe or a
 * file, or when NO_COLOR is set (https://no-color.org): help read by a script or saved to a file
 * should be plain text.
 */
export const withColourOnlyOnTerminals = <A, E, R>(
  program: Effect.Effect<A, E, R>,
  terminals: Terminals,
): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.console, (console) => {
    const colourOut = terminals.stdout && !terminals.noColor
    const colourErr = terminals.stderr && !terminals.noColor
    if (colourOut && colourErr) return program
    const adjusted: Console.Console = {
      ...console,
      log: (...args) => console.log(...(colourOut ? args : plain(args))),
      error: (...args) => console.error(...(colourErr ? args : plain(args))),
    }
    return Effect.withConsole(program, adjusted)
  })
