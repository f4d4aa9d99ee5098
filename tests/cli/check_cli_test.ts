/** `transient check` as a user runs it: exit statuses, stderr, stdout and the --json shape. */
import assert from "node:assert/strict"
import * as Schema from "effect/Schema"
import { Diagnostic } from "../../src/domain/imagefile/mod.ts"

import { ROOT, transient } from "../support/run_transient.ts"

Deno.test("transient check", async (t) => {
  // Each run starts a Deno process (about a second), so they run side by side.
  const [valid, invalid, json, jsonValid, missing, usage, byDefault] = await Promise.all([
    transient(["check", "testdata/alpine-gpt/Imagefile"]),
    transient(["check", "testdata/invalid/unknown-instruction.Imagefile"]),
    transient(["check", "--json", "testdata/invalid/sources.Imagefile"]),
    transient(["check", "--json", "testdata/scratch-xfs/Imagefile"]),
    transient(["check", "testdata/no-such/Imagefile"]),
    transient(["check", "--no-such-option", "testdata/alpine-gpt/Imagefile"]),
    transient(["check"], { cwd: `${ROOT}testdata/alpine-mbr` }),
  ])

  await t.step("a valid file: exit 0 and a one-line summary", () => {
    assert.equal(valid.code, 0, valid.stderr)
    assert.equal(
      valid.stdout,
      "testdata/alpine-gpt/Imagefile: 5 instructions, FROM scratch, " +
        "DISK 2 GiB GPT with 2 partitions (/ on 2), 1 ADD\n",
    )
    assert.equal(valid.stderr, "")
  })

  await t.step("an invalid file: exit 1, compiler-style diagnostics on stderr", () => {
    assert.equal(invalid.code, 1)
    assert.equal(invalid.stdout, "")
    const file = "testdata/invalid/unknown-instruction.Imagefile"
    assert.equal(
      invalid.stderr,
      [
        `${file}:2:1: error: unknown instruction 'INVALID' (expected FROM, DISK, PARTITION, COPY, ADD, RUN or INSPECT)`,
        "  INVALID command",
        "  ^~~~~~~",
        `${file}:3:1: error: unknown instruction 'RNU' (did you mean 'RUN'?)`,
        "  RNU echo hello",
        "  ^~~",
        `error: ${file} has 2 errors`,
        "",
      ].join("\n"),
    )
  })

  await t.step("--json: the diagnostics as a typed array on stdout, still exit 1", () => {
    assert.equal(json.code, 1)
    const diagnostics = Schema.decodeUnknownSync(Schema.Array(Diagnostic))(JSON.parse(json.stdout))
    assert.deepEqual(diagnostics[0], {
      file: "testdata/invalid/sources.Imagefile",
      line: 2,
      column: 6,
      endLine: 2,
      endColumn: 17,
      severity: "error",
      code: "source-absolute",
      message: "COPY source '/etc/passwd' must be relative to the build directory, not absolute",
    })
    assert.deepEqual(diagnostics.map((d) => d.code), [
      "source-absolute",
      "source-escapes",
      "unexpected-argument",
    ])
    assert.deepEqual(Object.keys(diagnostics[0]!).sort(), [
      "code",
      "column",
      "endColumn",
      "endLine",
      "file",
      "line",
      "message",
      "severity",
    ])
  })

  await t.step("--json on a valid file prints [] and exits 0", () => {
    assert.equal(jsonValid.code, 0, jsonValid.stderr)
    assert.deepEqual(JSON.parse(jsonValid.stdout), [])
  })

  await t.step("a missing file: one line on stderr, exit 1", () => {
    assert.equal(missing.code, 1)
    assert.equal(missing.stderr, "error: Cannot read testdata/no-such/Imagefile: no such file\n")
  })

  await t.step("a usage error exits 2", () => {
    assert.equal(usage.code, 2, usage.stderr)
  })

  await t.step("FILE defaults to ./Imagefile", () => {
    assert.equal(byDefault.code, 0, byDefault.stderr)
    assert.match(byDefault.stdout, /^Imagefile: 9 instructions, FROM scratch, DISK 2 GiB MBR/)
  })
})
