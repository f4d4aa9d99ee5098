/**
 * Guest artifacts built with the stand-in agent (fixtures/stand_in_agent.ts) instead of the real
 * one, for the tests of the recipe and of guest/init.
 */
import assert from "node:assert/strict"

const REPO = new URL("../..", import.meta.url).pathname

/** Run `guest/assemble.ts` into `out`; returns what it printed. */
export const buildStandInGuest = async (out: string): Promise<string> => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${REPO}guest/assemble.ts`,
      "--agent",
      `${REPO}tests/e2e/fixtures/stand_in_agent.ts`,
      "--out",
      out,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output()
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr)
  assert.ok(output.success, text)
  return text.trim()
}
