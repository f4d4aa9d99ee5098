/** Properties: no input makes the analyzer throw, and every diagnostic points into the file. */
import assert from "node:assert/strict"
import * as FastCheck from "effect/FastCheck"
import * as Schema from "effect/Schema"
import {
  analyzeImagefile,
  Diagnostic,
  Imagefile,
  renderDiagnostics,
  summarizeImagefile,
} from "../../src/domain/imagefile/mod.ts"

const VALID = [
  "FROM scratch\nDISK 2gb GPT\nPARTITION 1 SIZE 300MB FLAGS bios_grub\n" +
  "PARTITION 2 FORMAT ext2 MOUNT /\n\nADD alpine-3.13.tar.xz /\n",
  'FROM scratch\r\nDISK 20 GB MBR\r\nPARTITION 1 FORMAT xfs OPTIONS "-m crc=0" MOUNT / FLAGS boot\r\n' +
  "COPY a b /c\r\nRUN echo a \\\r\n  # comment\r\n  b\r\nINSPECT\r\n",
  "\uFEFFFROM alpine\nCOPY \"my file\" 'x y' /opt/\nRUN sed -i 's/#x/y/' /etc/z # text",
]

/** Pieces that exercise the grammar's edges: quotes, escapes, continuations, line ends. */
const PIECES = [
  "\\",
  "\\\n",
  "\n",
  "\r\n",
  "\r",
  "#",
  '"',
  "'",
  '\\"',
  " ",
  "\t",
  ",",
  "\uFEFF",
  "FROM",
  "DISK",
  "PARTITION",
  "SIZE",
  "FORMAT",
  "OPTIONS",
  "MOUNT",
  "FLAGS",
  "COPY",
  "ADD",
  "RUN",
  "INSPECT",
  "scratch",
  "GB",
  "MB",
  "GPT",
  "MBR",
  "0",
  "1",
  "99999999999999999999",
  "/",
  "..",
  "boot",
  "bios_grub",
  "\u00e9",
  "\ud83d\ude00",
  "\ud800",
]

const analyzable = (text: string) => {
  const { imagefile, diagnostics } = analyzeImagefile(text, "Imagefile")
  // The results are well-typed data, as the JSON output promises.
  Schema.decodeUnknownSync(Imagefile)(imagefile)
  Schema.decodeUnknownSync(Schema.Array(Diagnostic))(diagnostics)
  const lines = text.split(/\r\n|\n|\r/).length
  for (const d of diagnostics) {
    assert.ok(d.line >= 1 && d.line <= lines && d.endLine >= d.line, JSON.stringify(d))
    assert.ok(d.column >= 1 && (d.endLine > d.line || d.endColumn >= d.column), JSON.stringify(d))
  }
  renderDiagnostics(diagnostics, text)
  summarizeImagefile(imagefile)
}

const mutation = FastCheck.tuple(
  FastCheck.constantFrom(...VALID),
  FastCheck.array(
    FastCheck.tuple(
      FastCheck.nat(),
      FastCheck.nat(4),
      FastCheck.oneof(FastCheck.constantFrom(...PIECES), FastCheck.string({ maxLength: 4 })),
    ),
    { maxLength: 6 },
  ),
).map(([text, edits]) =>
  edits.reduce((current, [position, removed, inserted]) => {
    const at = position % (current.length + 1)
    return current.slice(0, at) + inserted + current.slice(at + removed)
  }, text)
)

Deno.test("random text never makes the analyzer throw", () => {
  FastCheck.assert(
    FastCheck.property(FastCheck.string({ unit: "binary", maxLength: 200 }), analyzable),
    {
      numRuns: 500,
    },
  )
  FastCheck.assert(
    FastCheck.property(
      FastCheck.array(FastCheck.constantFrom(...PIECES), { maxLength: 40 }).map((p) => p.join("")),
      analyzable,
    ),
    { numRuns: 500 },
  )
})

Deno.test("random mutations of valid Imagefiles never make the analyzer throw", () => {
  FastCheck.assert(FastCheck.property(mutation, analyzable), { numRuns: 1000 })
})

Deno.test("the valid seeds are valid", () => {
  for (const text of VALID) {
    assert.deepEqual(analyzeImagefile(text, "Imagefile").diagnostics, [])
  }
})

Deno.test("inputs named like Object.prototype members are ordinary text", () => {
  for (const name of ["__proto__", "constructor", "toString", "hasOwnProperty"]) {
    analyzable(name)
    analyzable(`FROM ${name}\nCOPY ${name} /${name}\n${name}`)
    const partition =
      `FROM scratch\nDISK 1GB GPT\nPARTITION 1 FORMAT ext4 OPTIONS "${name}" MOUNT /`
    const { imagefile } = analyzeImagefile(partition, "Imagefile")
    const found = imagefile.instructions[2]
    assert.deepEqual(found?._tag === "Partition" && found.format?.options?.value, [name])
  }
})
