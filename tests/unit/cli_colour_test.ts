/**
 * Colour in the CLI's own output (@effect/cli's help and usage errors): only on a terminal, and
 * never with NO_COLOR.
 */
import assert from "node:assert/strict"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { withColourOnlyOnTerminals } from "../../src/cli/exit.ts"

const BOLD_HELLO = "\x1b[1mhello\x1b[0m"

/** What `program` logged and errored, through a recording Console, under `terminals`. */
const recorded = async (terminals: Parameters<typeof withColourOnlyOnTerminals>[1]) => {
  const lines: Array<string> = []
  const recording = Effect.map(Effect.console, (console): Console.Console => ({
    ...console,
    log: (...args) => Effect.sync(() => void lines.push(`out ${args.join(" ")}`)),
    error: (...args) => Effect.sync(() => void lines.push(`err ${args.join(" ")}`)),
  }))
  const program = Effect.zipRight(Console.log(BOLD_HELLO), Console.error(BOLD_HELLO))
  await Effect.runPromise(
    Effect.flatMap(
      recording,
      (console) => Effect.withConsole(withColourOnlyOnTerminals(program, terminals), console),
    ),
  )
  return lines
}

Deno.test("colour stays on terminals and goes from pipes and under NO_COLOR", async () => {
  assert.deepEqual(await recorded({ stdout: true, stderr: true, noColor: false }), [
    `out ${BOLD_HELLO}`,
    `err ${BOLD_HELLO}`,
  ])
  assert.deepEqual(await recorded({ stdout: false, stderr: true, noColor: false }), [
    "out hello",
    `err ${BOLD_HELLO}`,
  ])
  assert.deepEqual(await recorded({ stdout: true, stderr: true, noColor: true }), [
    "out hello",
    "err hello",
  ])
})
