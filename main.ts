/**
 * transient: build virtual-machine disk images from an Imagefile.
 *
 * The entry point: the command tree with readable help, the platform layer (provided here, once),
 * and the runtime that turns the program's end into an exit status.
 */
import * as Command from "@effect/cli/Command"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Ref from "effect/Ref"
import { transientCommand } from "./src/cli/command_tree.ts"
import { exitCodeOf, type StopSignal, withColourOnlyOnTerminals } from "./src/cli/exit.ts"
import { commandHelp, withReadableHelp } from "./src/cli/help.ts"
import { Published } from "./src/cli/root.ts"
import { platformLive } from "./src/app/live.ts"
import { VERSION } from "./src/version.ts"

const cli = Command.run(transientCommand, { name: "transient", version: VERSION })

/** Set when a build publishes its image: from then on, the command has succeeded. */
const published = Effect.runSync(Ref.make(false))

/** How long clean-up may take after a stop signal before the process exits regardless. */
const CLEANUP_LIMIT_MS = 9_000

/**
 * The first stop signal, kept for the exit status (130 or 143). The runtime interrupts the
 * program on the first one and then stops listening; these listeners stay, so that a second
 * Ctrl-C during clean-up does not kill the process before clean-up is done. Should clean-up
 * itself hang, the process exits after CLEANUP_LIMIT_MS: QEMU dies with it (it is tied to this
 * process's life), and the next run sweeps what was left in temp directories.
 */
let stopSignal: StopSignal | undefined
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    if (stopSignal !== undefined) {
      console.error("Cleaning up; please wait")
      return
    }
    stopSignal = signal
    const watchdog = setTimeout(() => {
      console.error("error: clean-up did not finish in time; exiting")
      Deno.exit(exitStatus(Exit.interrupt(FiberId.none)))
    }, CLEANUP_LIMIT_MS)
    Deno.unrefTimer(watchdog)
  })
}

const exitStatus = (exit: Exit.Exit<unknown, unknown>) =>
  exitCodeOf(exit, {
    verbose: false,
    signal: stopSignal,
    published: Effect.runSync(Ref.get(published)),
  })

const run = withReadableHelp(
  commandHelp(transientCommand),
  Deno.args,
  cli(["deno", "transient", ...Deno.args]),
)

const program = withColourOnlyOnTerminals(run, {
  stdout: Deno.stdout.isTerminal(),
  stderr: Deno.stderr.isTerminal(),
  noColor: (Deno.env.get("NO_COLOR") ?? "") !== "",
}).pipe(Effect.provide(platformLive), Effect.provideService(Published, published))

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  // Errors were told inside each command; what is left is how the program ended.
  teardown: (exit) => Deno.exit(exitStatus(exit)),
})
