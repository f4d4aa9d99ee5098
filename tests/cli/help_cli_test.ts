/** Help and usage errors as a user meets them: stdout or stderr, one line, the exit status. */
import assert from "node:assert/strict"
import { transient } from "../support/run_transient.ts"

Deno.test("help on stdout, usage errors as one line on stderr with exit status 2", async (t) => {
  // Each run starts a Deno process (about a second), so they run side by side.
  const [buildHelp, short, bare, pushHelp, platform, typo, command, noName, noImage] = await Promise
    .all([
      transient(["build", "--help"]),
      transient(["image", "push", "-h"]),
      transient([]),
      transient(["image", "push", "--help"]),
      transient(["build", "--plain", "x"]),
      transient(["build", "--nmae", "web", "."]),
      transient(["buidl"]),
      transient(["build", "."]),
      transient(["run", "--accel", "tcg"]),
    ])

  await t.step("--help: one screen on stdout, exit 0", () => {
    assert.equal(buildHelp.code, 0, buildHelp.stderr)
    assert.equal(buildHelp.stderr, "")
    const lines = buildHelp.stdout.trimEnd().split("\n")
    assert.ok(lines.length <= 45, buildHelp.stdout)
    assert.equal(lines[0], "Build a qcow2 image from an Imagefile inside a helper VM")
    assert.match(buildHelp.stdout, /^ {2}transient build --name NAME \[--file FILE\]/m)
    assert.match(buildHelp.stdout, /\[--cache-from REF\]\.\.\./)
    assert.match(buildHelp.stdout, /^ {2}-n, --name NAME +The name of the image to build$/m)
  })

  await t.step("-h is --help; `transient` alone shows the commands", () => {
    assert.equal(short.code, 0, short.stderr)
    assert.equal(short.stdout, pushHelp.stdout)
    assert.match(short.stdout, /^Push an image from the store to an OCI registry/)
    assert.match(short.stdout, /^ {2}transient image push \[.* NAME REF$/ms)
    assert.equal(bare.code, 0, bare.stderr)
    assert.match(bare.stdout, /^COMMANDS\n {2}build +Build a qcow2 image/m)
  })

  await t.step("an unknown option or command names itself and the closest one", () => {
    assert.equal(platform.code, 2)
    assert.equal(
      platform.stderr,
      "error: unknown option '--plain' for 'transient build' (the nearest is '--plain-http'; see 'transient build --help')\n",
    )
    assert.equal(typo.code, 2)
    assert.equal(
      typo.stderr,
      "error: unknown option '--nmae' for 'transient build' (did you mean '--name'?)\n",
    )
    assert.equal(command.code, 2)
    assert.equal(
      command.stderr,
      "error: unknown command 'buidl' for 'transient' (did you mean 'build'?)\n",
    )
    assert.equal(platform.stdout + typo.stdout + command.stdout, "")
  })

  await t.step("a missing option or argument says which, in one line", () => {
    assert.equal(noName.code, 2)
    assert.equal(noName.stderr, "error: missing option '--name NAME' for 'transient build'\n")
    assert.equal(noImage.code, 2)
    assert.equal(noImage.stderr, "error: missing argument IMAGE for 'transient run'\n")
  })
})
