/**
 * Usage errors found after parsing: one line on stderr, exit status 2.
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { EXIT_USAGE, ExitWith } from "./exit.ts"

export const usage = (message: string): Effect.Effect<never, ExitWith> =>
  Console.error(`error: ${message}`).pipe(Effect.zipRight(new ExitWith({ code: EXIT_USAGE })))
