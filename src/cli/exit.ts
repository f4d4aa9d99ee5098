/**
 * The CLI edge: turns the outcome of a command into an exit status and, for failures, one line
 * on stderr (a stack trace only with --verbose).
 */
import * as Cause from "effect/Cause"
import type * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as ValidationError from "@effect/cli/ValidationError"
import { InvalidImagefile, VmError } from "../domain/errors.ts"

/** A command already told the user what went wrong; exit with `code` and print nothing more. */
export class ExitWith extends Data.TaggedError("ExitWith")<{ readonly code: number }> {}

export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2
export const EXIT_INTERRUPTED = 130

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
  const log = error instanceof VmError ? error.log ?? [] : []
  return [describeError(error), ...log.map((line) => `  | ${line}`)].join("\n")
}

/** Decide the exit status of a finished command, printing its error line when it failed. */
export const exitCodeOf = <E>(
  exit: Exit.Exit<unknown, E>,
  options: { readonly verbose: boolean },
): number => {
  if (Exit.isSuccess(exit)) return 0
  const cause = exit.cause
  if (Cause.isInterruptedOnly(cause)) {
    console.error("Interrupted")
    return EXIT_INTERRUPTED
  }
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (error instanceof ExitWith) return error.code
    // @effect/cli has already printed usage errors with the help that fits them.
    if (ValidationError.isValidationError(error)) return EXIT_USAGE
    // The diagnostics say what is wrong and where; the last line counts them.
    if (error instanceof InvalidImagefile) console.error(error.rendered)
    console.error(`error: ${describeError(error)}`)
    if (options.verbose) console.error(Cause.pretty(cause))
    return EXIT_FAILURE
  }
  const defect = Cause.squash(cause)
  console.error(`error: internal error: ${describeError(defect)}`)
  if (options.verbose) console.error(Cause.pretty(cause))
  else console.error("(run again with --verbose for the details)")
  return EXIT_FAILURE
}

/** SGR escapes (colours, bold), the only ones @effect/cli writes into its help and usage errors. */
// deno-lint-ignore no-control-regex -- ESC is the very character to match.
const SGR = /\x1b\[[0-9;]*m/g

const plain = (args: ReadonlyArray<unknown>) =>
  args.map((arg) => (typeof arg === "string" ? arg.replace(SGR, "") : arg))

/**
 * `program` with its Console's log and error free of colour codes when they go to a pipe or a
 * file, or when NO_COLOR is set (https://no-color.org): help read by a script or saved to a file
 * should be plain text.
 */
export const withColourOnlyOnTerminals = <A, E, R>(
  program: Effect.Effect<A, E, R>,
  terminals: { readonly stdout: boolean; readonly stderr: boolean; readonly noColor: boolean } = {
    stdout: Deno.stdout.isTerminal(),
    stderr: Deno.stderr.isTerminal(),
    noColor: (Deno.env.get("NO_COLOR") ?? "") !== "",
  },
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

/** Run the CLI program and exit the process with its status; Ctrl-C interrupts it cleanly. */
export const runCli = <E>(
  program: Effect.Effect<void, E>,
  options: { readonly verbose: boolean },
): void => {
  const controller = new AbortController()
  let interrupts = 0
  const onSignal = () => {
    interrupts += 1
    // A second Ctrl-C while cleanup runs means the user really wants out.
    if (interrupts > 1) Deno.exit(EXIT_INTERRUPTED)
    controller.abort()
  }
  Deno.addSignalListener("SIGINT", onSignal)
  Deno.addSignalListener("SIGTERM", onSignal)
  Effect.runPromiseExit(program, { signal: controller.signal }).then((exit) => {
    Deno.exit(exitCodeOf(exit, options))
  })
}
