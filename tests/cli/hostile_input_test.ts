/**
 * Hostile and unlucky input at the command line: files that are not files, Imagefiles too big
 * or with commands the guest could never run, escape bytes, names the store cannot hold, sources
 * that would hang a copy. Each is refused before any work, with a one-line reason.
 */
import assert from "node:assert/strict"
import { transient } from "../support/run_transient.ts"
import { runHost } from "../support/host_tool.ts"

const dir = await Deno.makeTempDir({ prefix: "transient-hostile-" })
const env = { TRANSIENT_IMAGE_BACKEND: `${dir}/store` }
const write = (name: string, text: string) => Deno.writeTextFile(`${dir}/${name}`, text)
const SCRATCH = "FROM scratch\nDISK 1 GB GPT\nPARTITION 1 FORMAT ext4 MOUNT /\n"

await runHost(["mkfifo", `${dir}/fifo`])
await write("huge.Imagefile", SCRATCH + `RUN true${" ".repeat(1024)}\n`.repeat(1100))
await write("long-run.Imagefile", SCRATCH + `RUN echo ${"x".repeat(128 * 1024)}\n`)
await write("nul.Imagefile", SCRATCH + "RUN echo a\0b\n")
await write("escape.Imagefile", "FROM scratch\nBOGUS \x1b[31mred\x1b[0m\n")
await Deno.mkdir(`${dir}/ctx`)
await runHost(["mkfifo", `${dir}/ctx/pipe`])
await Deno.writeTextFile(`${dir}/ctx/Imagefile`, SCRATCH + "ADD pipe /\n")

Deno.test("check and build read only regular files of at most 1 MiB", async () => {
  const [fifo, zero, huge] = await Promise.all([
    transient(["check", `${dir}/fifo`]),
    transient(["check", "/dev/zero"]),
    transient(["check", `${dir}/huge.Imagefile`]),
  ])
  assert.equal(fifo.code, 1)
  assert.equal(fifo.stderr, `error: Cannot read ${dir}/fifo: it is not a regular file\n`)
  assert.equal(zero.code, 1)
  assert.equal(zero.stderr, "error: Cannot read /dev/zero: it is not a regular file\n")
  assert.equal(huge.code, 1)
  assert.match(huge.stderr, /it is larger than 1 MiB, the limit of an Imagefile\n$/)
})

Deno.test("check reports a RUN the guest cannot run, where it is", async () => {
  const [long, nul] = await Promise.all([
    transient(["check", `${dir}/long-run.Imagefile`]),
    transient(["check", `${dir}/nul.Imagefile`]),
  ])
  assert.equal(long.code, 1)
  assert.match(
    long.stderr,
    /long-run\.Imagefile:4:5: error: this RUN command is 131077 bytes; the longest one the guest can run is 131071/,
  )
  assert.equal(nul.code, 1)
  assert.match(
    nul.stderr,
    /nul\.Imagefile:4:5: error: a RUN command cannot contain a NUL character/,
  )
})

Deno.test("diagnostics show control characters as symbols, never as escapes", async () => {
  const result = await transient(["check", `${dir}/escape.Imagefile`])
  assert.equal(result.code, 1)
  assert.ok(!result.stderr.includes("\x1b"), "no ESC reaches the terminal")
  assert.match(result.stderr, /BOGUS \u241b\[31mred\u241b\[0m/)
})

Deno.test("image names the store cannot hold are usage errors before any work", async () => {
  const [newline, long] = await Promise.all([
    transient(["build", "--name", "a\nb", "--dry-run", `${dir}/ctx`], { env }),
    transient(["build", "--name", "n".repeat(250), "--dry-run", `${dir}/ctx`], { env }),
  ])
  assert.equal(newline.code, 2)
  assert.equal(
    newline.stderr,
    "error: 'a\\x0ab' cannot be used as an image name: it may not contain control characters\n",
  )
  assert.equal(long.code, 2)
  assert.match(long.stderr, /cannot be used as an image name: it is too long: 250 bytes/)
})

Deno.test("ADD of a FIFO is refused, naming it, instead of hanging", async () => {
  const result = await transient(["build", "--name", "pipe", "--dry-run", `${dir}/ctx`], { env })
  assert.equal(result.code, 1)
  assert.match(
    result.stderr,
    /^error: .*Imagefile:4:5: COPY\/ADD source 'pipe' is a FIFO: only files, directories and symlinks can be copied$/m,
  )
})

globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }))
