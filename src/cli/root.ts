/**
 * The root of the command tree and what every command shares: `--verbose`, and how a command's
 * work meets the CLI edge.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Ref from "effect/Ref"
import { atTheEdge, type ExitWith } from "./exit.ts"

/**
 * `--verbose`/`-v`: on the root (`transient -v build ...`) and on every command (`transient
 * build ... -v`), since @effect/cli reads a parent's options only before the subcommand or after
 * the last of its own.
 */
export const verboseOption = Options.boolean("verbose").pipe(
  Options.withAlias("v"),
  Options.withDescription("When something fails, also print the full cause (a stack trace)"),
)

/**
 * Whether the command's image was published: then it has succeeded, even when a stop signal
 * arrives before the process ends. The entry point reads it for the exit status.
 */
export class Published
  extends Context.Tag("transient/cli/Published")<Published, Ref.Ref<boolean>>() {}

export const rootCommand = Command.make("transient", { verbose: verboseOption })

/**
 * A command's handler: `body` at the CLI edge, where its expected errors become one line on
 * stderr and an exit status (a trace too with --verbose, given here or on the root).
 */
export const handler = <A extends { readonly verbose: boolean }, E, R>(
  body: (args: A) => Effect.Effect<void, E, R>,
) =>
(args: A): Effect.Effect<void, ExitWith, R | Command.Command.Context<"transient">> =>
  Effect.flatMap(rootCommand, (root) => atTheEdge(root.verbose || args.verbose)(body(args)))
