/** Rendering diagnostics like a compiler, the summary line, and loading an Imagefile from disk. */
import assert from "node:assert/strict"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { loadImagefile } from "../../src/app/load_imagefile.ts"
import {
  analyzeImagefile,
  renderDiagnostics,
  summarizeImagefile,
} from "../../src/domain/imagefile/mod.ts"
import { runFailure, runTest } from "../support/effect.ts"

const render = (text: string) =>
  renderDiagnostics(analyzeImagefile(text, "Imagefile").diagnostics, text)

Deno.test("a diagnostic renders as file:line:col, the source line and a caret line", () => {
  assert.equal(
    render("FROM x\nINVALID command\n"),
    [
      "Imagefile:2:1: error: unknown instruction 'INVALID' (expected FROM, DISK, PARTITION, COPY, ADD, RUN or INSPECT)",
      "  INVALID command",
      "  ^~~~~~~",
    ].join("\n"),
  )
})

Deno.test("carets follow tabs, sit past the end for a missing word, stop at a line's end", () => {
  assert.equal(
    render("FROM x\n\tCOPY  /abs /d\n"),
    [
      "Imagefile:2:8: error: COPY source '/abs' must be relative to the build directory, not absolute",
      "  \tCOPY  /abs /d",
      "  \t      ^~~~",
    ].join("\n"),
  )
  assert.equal(
    render("FROM scratch\nDISK 20 GB\n").split("\n").slice(-2).join("\n"),
    ["  DISK 20 GB", "            ^"].join("\n"),
  )
  // A span over several lines is underlined to the end of its first line.
  const text = "FROM x\nFROM y \\\n  z\n"
  const lines = render(text).split("\n")
  assert.ok(lines[0]?.startsWith("Imagefile:2:1: error: Exactly one FROM instruction"))
  assert.deepEqual(lines.slice(1, 3), ["  FROM y \\", "  ^~~~~~~~"])
})

Deno.test("the summary names the instructions, FROM and the disk layout", () => {
  const summary = (text: string) =>
    summarizeImagefile(analyzeImagefile(text, "path/Imagefile").imagefile)
  assert.equal(
    summary(
      "FROM scratch\nDISK 2gb GPT\nPARTITION 1 SIZE 300MB FLAGS bios_grub\n" +
        "PARTITION 2 FORMAT ext2 MOUNT /\nADD rootfs.tar /\nRUN a\nRUN b\n",
    ),
    "path/Imagefile: 7 instructions, FROM scratch, DISK 2 GiB GPT with 2 partitions (/ on 2), " +
      "1 ADD, 2 RUN",
  )
  assert.equal(summary("FROM alpine"), "path/Imagefile: 1 instruction, FROM alpine")
})

Deno.test("loadImagefile returns the AST of a valid file", async () => {
  const { imagefile } = await runTest(
    loadImagefile("testdata/alpine-gpt/Imagefile").pipe(Effect.provide(NodeContext.layer)),
  )
  assert.equal(imagefile.file, "testdata/alpine-gpt/Imagefile")
  assert.deepEqual(imagefile.instructions.map((i) => i._tag), [
    "From",
    "Disk",
    "Partition",
    "Partition",
    "Add",
  ])
})

Deno.test("loadImagefile returns the sha256 of the file's bytes, as read", async () => {
  const dir = await Deno.makeTempDir()
  const path = `${dir}/Imagefile`
  // A byte-order mark, which decoding drops: the digest is of the bytes, not the decoded text.
  await Deno.writeTextFile(
    path,
    "\uFEFFFROM scratch\nDISK 1 GB GPT\nPARTITION 1 FORMAT ext4 MOUNT /\n",
  )
  const { digest } = await runTest(loadImagefile(path).pipe(Effect.provide(NodeContext.layer)))
  const bytes = await Deno.readFile(path)
  const expected = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))
  const hex = [...expected].map((byte) => byte.toString(16).padStart(2, "0")).join("")
  assert.equal(digest, `sha256:${hex}`)
  await Deno.remove(dir, { recursive: true })
})

const failureOf = async (path: string) => {
  const cause = await runFailure(loadImagefile(path).pipe(Effect.provide(NodeContext.layer)))
  return Option.getOrThrow(Cause.failureOption(cause))
}

Deno.test("loadImagefile fails with the rendered diagnostics of an invalid file", async () => {
  const error = await failureOf("testdata/invalid/unknown-instruction.Imagefile")
  assert.equal(error._tag, "InvalidImagefile")
  if (error._tag !== "InvalidImagefile") return
  assert.equal(error.count, 2)
  assert.equal(error.message, "testdata/invalid/unknown-instruction.Imagefile has 2 errors")
  assert.match(
    error.rendered,
    /^testdata\/invalid\/unknown-instruction\.Imagefile:3:1: error: unknown instruction 'RNU' \(did you mean 'RUN'\?\)$/m,
  )
})

Deno.test("loadImagefile: a missing file or a directory is FileUnreadable", async () => {
  const missing = await failureOf("testdata/no-such-dir/Imagefile")
  assert.equal(missing._tag, "FileUnreadable")
  assert.equal(missing.message, "Cannot read testdata/no-such-dir/Imagefile: no such file")
  const directory = await failureOf("testdata")
  assert.equal(directory.message, "Cannot read testdata: it is a directory")
})
