/** Colour in the CLI's own output (@effect/cli's help and usage errors) goes through pipes. */
import assert from "node:assert/strict"
import { transient } from "../support/run_transient.ts"

const ESC = "\x1b["

Deno.test("--help and a usage error through pipes are plain text", async () => {
  const [help, usage] = await Promise.all([
    transient(["--help"], { env: { NO_COLOR: "" } }),
    transient(["build"], { env: { NO_COLOR: "" } }),
  ])
  assert.equal(help.code, 0, help.stderr)
  assert.match(help.stdout, /USAGE/)
  assert.equal(help.stdout.includes(ESC), false, JSON.stringify(help.stdout.slice(0, 200)))
  assert.equal(usage.code, 2)
  assert.match(usage.stderr + usage.stdout, /--name/)
  assert.equal((usage.stderr + usage.stdout).includes(ESC), false)
})
