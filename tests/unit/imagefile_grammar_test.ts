/** The Imagefile grammar: lexical rules, every instruction's syntax, spans, syntax errors. */
import assert from "node:assert/strict"
import {
  analyzeImagefile,
  type Diagnostic,
  type Instruction,
  type Partition,
  splitWords,
} from "../../src/domain/imagefile/mod.ts"

const parse = (text: string) => analyzeImagefile(text, "Imagefile")

/** The instructions of `text`, which must have no syntax errors (validation aside). */
const instructionsOf = (text: string): ReadonlyArray<Instruction> => {
  const { imagefile, diagnostics } = parse(text)
  const syntax = diagnostics.filter((d) =>
    ["syntax-error", "unknown-instruction", "missing-argument", "unexpected-argument"].includes(
      d.code,
    )
  )
  assert.deepEqual(syntax, [], "unexpected syntax errors")
  return imagefile.instructions
}

const only = <T extends Instruction["_tag"]>(
  text: string,
  tag: T,
): Extract<Instruction, { _tag: T }> => {
  const found = instructionsOf(text).filter((i) => i._tag === tag)
  assert.equal(found.length, 1, `expected one ${tag}`)
  return found[0] as Extract<Instruction, { _tag: T }>
}

const partitionOf = (line: string): Partition =>
  only(`FROM scratch\nDISK 20 GB GPT\n${line}\n`, "Partition")

const codes = (diagnostics: ReadonlyArray<Diagnostic>) => diagnostics.map((d) => d.code)

const at = (d: Diagnostic | undefined) =>
  d === undefined ? undefined : [d.line, d.column, d.endLine, d.endColumn]

Deno.test("keywords are case-insensitive", () => {
  const tags = instructionsOf(
    "from scratch\nDisk 1 gb gpt\npartition 1 format EXT4 mount / flags BOOT\n" +
      "copy a /a\nAdd b /b\nrun true\ninspect\n",
  ).map((i) => i._tag)
  assert.deepEqual(tags, ["From", "Disk", "Partition", "Copy", "Add", "Run", "Inspect"])
  const partition = partitionOf("PARTITION 1 FORMAT EXT4 MOUNT / FLAGS BOOT")
  assert.equal(partition.format?.fs.value, "ext4")
  assert.deepEqual(partition.flags?.value.map((f) => f.value), ["boot"])
})

Deno.test("FROM scratch in any case is scratch; an image spec is kept as written", () => {
  assert.equal(only("FROM SCRATCH\n", "From").scratch, true)
  const from = only("FROM ubuntu,http=https://example.org/u.qcow2\n", "From")
  assert.equal(from.scratch, false)
  assert.equal(from.image.value, "ubuntu,http=https://example.org/u.qcow2")
  assert.deepEqual(from.image.span, { line: 1, column: 6, endLine: 1, endColumn: 45 })
})

Deno.test("DISK: '20 GB' and '20GB', units and table in any case", () => {
  for (const text of ["DISK 20 GB MBR", "DISK 20GB MBR", "disk 20gb mbr", "DISK 20 Gb mBr"]) {
    const disk = only(`FROM scratch\n${text}\nPARTITION 1 MOUNT /\n`, "Disk")
    assert.equal(disk.size.amount, 20)
    assert.equal(disk.size.unit, "GB")
    assert.equal(disk.size.bytes, 20 * 2 ** 30)
    assert.equal(disk.table.value, "mbr")
  }
  const disk = only("FROM scratch\nDISK 10Gb GPT\n", "Disk")
  assert.equal(disk.table.value, "gpt")
  assert.deepEqual(disk.size.span, { line: 2, column: 6, endLine: 2, endColumn: 10 })
  assert.deepEqual(disk.table.span, { line: 2, column: 11, endLine: 2, endColumn: 14 })
  assert.deepEqual(disk.span, { line: 2, column: 1, endLine: 2, endColumn: 14 })
  assert.equal(only("FROM scratch\nDISK 512 mb GPT\n", "Disk").size.bytes, 512 * 2 ** 20)
})

Deno.test("PARTITION: clauses in any order, all of them parsed", () => {
  const a = partitionOf('PARTITION 1 SIZE 10 GB FORMAT xfs OPTIONS "-m crc=0" MOUNT / FLAGS boot')
  const b = partitionOf('PARTITION 1 FLAGS boot MOUNT / FORMAT xfs OPTIONS "-m crc=0" SIZE 10GB')
  for (const p of [a, b]) {
    assert.equal(p.number.value, 1)
    assert.equal(p.size?.bytes, 10 * 2 ** 30)
    assert.equal(p.format?.fs.value, "xfs")
    assert.deepEqual(p.format?.options?.value, ["-m", "crc=0"])
    assert.equal(p.mount?.value, "/")
    assert.deepEqual(p.flags?.value.map((f) => f.value), ["boot"])
  }
  const bare = partitionOf("PARTITION 2")
  assert.equal(bare.number.value, 2)
  assert.equal("size" in bare || "format" in bare || "mount" in bare || "flags" in bare, false)
})

Deno.test("PARTITION: FLAGS take a comma-separated list, blanks around commas allowed", () => {
  const p = partitionOf("PARTITION 1 FLAGS boot, efi ,bios_grub MOUNT /")
  assert.deepEqual(p.flags?.value.map((f) => f.value), ["boot", "efi", "bios_grub"])
  assert.deepEqual(p.flags?.value[1]?.span, { line: 3, column: 25, endLine: 3, endColumn: 28 })
  assert.deepEqual(p.flags?.span, { line: 3, column: 19, endLine: 3, endColumn: 39 })
  assert.equal(p.mount?.value, "/")
})

Deno.test('OPTIONS: a double-quoted string with \\" and \\\\, split into words like a shell', () => {
  const options = (quoted: string) =>
    partitionOf(`PARTITION 1 FORMAT ext4 OPTIONS ${quoted} MOUNT /`).format?.options?.value
  assert.deepEqual(options('"-O ^64bit"'), ["-O", "^64bit"])
  assert.deepEqual(options('"  -m   crc=0  "'), ["-m", "crc=0"])
  assert.deepEqual(options('"-L \\"my root\\" -E x"'), ["-L", "my root", "-E", "x"])
  assert.deepEqual(options("\"-L 'my root'\""), ["-L", "my root"])
  assert.deepEqual(options('"-d root=C:\\\\x"'), ["-d", "root=C:\\x"])
  assert.deepEqual(options('""'), [])
  const p = partitionOf('PARTITION 1 FORMAT xfs OPTIONS "-m crc=0"')
  assert.deepEqual(p.format?.options?.span, { line: 3, column: 32, endLine: 3, endColumn: 42 })
})

Deno.test("splitWords groups quoted text and glues adjacent parts", () => {
  assert.deepEqual(splitWords(`a "b c" 'd e' f"g h"i`), ["a", "b c", "d e", "fg hi"])
  assert.deepEqual(splitWords(`"\\"quoted\\""`), ['"quoted"'])
  assert.equal(splitWords(`"open`), undefined)
  assert.equal(splitWords(`'open`), undefined)
})

Deno.test("COPY/ADD: several sources, the last word is the destination, quotes group", () => {
  const copy = only("FROM x\nCOPY a.txt dir/b.txt /etc/\n", "Copy")
  assert.deepEqual(copy.sources.map((s) => s.value), ["a.txt", "dir/b.txt"])
  assert.equal(copy.destination.value, "/etc/")
  assert.deepEqual(copy.sources[1]?.span, { line: 2, column: 12, endLine: 2, endColumn: 21 })
  assert.deepEqual(copy.destination.span, { line: 2, column: 22, endLine: 2, endColumn: 27 })
  const add = only(`FROM x\nADD "my file.tar" 'other one' "/opt/my dir"\n`, "Add")
  assert.deepEqual(add.sources.map((s) => s.value), ["my file.tar", "other one"])
  assert.equal(add.destination.value, "/opt/my dir")
  assert.deepEqual(add.sources[0]?.span, { line: 2, column: 5, endLine: 2, endColumn: 18 })
})

Deno.test("RUN keeps the rest of the logical line verbatim, '#' included", () => {
  const run = only(`FROM x\nRUN   echo "a  b" | sed 's/#/x/' # trailing   \n`, "Run")
  assert.equal(run.command.value, `echo "a  b" | sed 's/#/x/' # trailing`)
  assert.deepEqual(run.command.span, { line: 2, column: 7, endLine: 2, endColumn: 44 })
  assert.equal(run.text, `RUN   echo "a  b" | sed 's/#/x/' # trailing`)
})

Deno.test("continuations: '\\' as last non-blank char, removed with its newline, as Docker does", () => {
  const text = "FROM x\nRUN apk add a \\\n    b\\   \n  c\nRUN true\n"
  const runs = instructionsOf(text).filter((i) => i._tag === "Run")
  assert.deepEqual(runs.map((r) => r._tag === "Run" && r.command.value), [
    "apk add a     b  c",
    "true",
  ])
  const first = runs[0]!
  assert.deepEqual(first.span, { line: 2, column: 1, endLine: 4, endColumn: 4 })
  assert.equal(first.text, "RUN apk add a     b  c")
  // A continued PARTITION: spans point at the physical lines.
  const p = partitionOf("PARTITION 1 \\\n  FORMAT ext4 \\\n  MOUNT /")
  assert.deepEqual(p.format?.fs.span, { line: 4, column: 10, endLine: 4, endColumn: 14 })
  assert.deepEqual(p.mount?.span, { line: 5, column: 9, endLine: 5, endColumn: 10 })
})

Deno.test("comments: whole lines only, also skipped inside a continued instruction", () => {
  const text = "# heading\n  # indented comment\nFROM x\nRUN echo a \\\n# inside\n  \\\n   b\n"
  const runs = instructionsOf(text).filter((i) => i._tag === "Run")
  assert.equal(runs.length, 1)
  // The comment line goes; the blanks of the other lines stay, as in Docker.
  assert.equal(runs[0]?._tag === "Run" && runs[0].command.value, "echo a      b")
  // '#' elsewhere is text.
  assert.equal(only("FROM x\nCOPY a#b /c#d\n", "Copy").destination.value, "/c#d")
})

Deno.test("a blank line inside a continuation is skipped, with a warning", () => {
  const { imagefile, diagnostics } = parse("FROM x\nRUN echo a \\\n\n  b\n")
  assert.deepEqual(codes(diagnostics), ["empty-continuation-line"])
  assert.equal(diagnostics[0]?.severity, "warning")
  assert.equal(diagnostics[0]?.line, 3)
  const run = imagefile.instructions[1]
  assert.equal(run?._tag === "Run" && run.command.value, "echo a   b")
})

Deno.test("CRLF and CR line ends, a UTF-8 BOM, no final newline, continuation at the end", () => {
  const text =
    "\uFEFFFROM scratch\r\nDISK 1 GB GPT\r\nPARTITION 1 FORMAT ext4 MOUNT /\rRUN a \\\r\n b"
  const { imagefile, diagnostics } = parse(text)
  assert.deepEqual(diagnostics, [])
  assert.equal(imagefile.instructions.length, 4)
  const from = imagefile.instructions[0]
  assert.deepEqual(from?.span, { line: 1, column: 1, endLine: 1, endColumn: 13 })
  const run = imagefile.instructions[3]
  assert.equal(run?._tag === "Run" && run.command.value, "a  b")
  assert.deepEqual(parse("FROM x").diagnostics, [])
  const trailing = parse("FROM x\nRUN a \\")
  assert.deepEqual(trailing.diagnostics, [])
  assert.equal(trailing.imagefile.instructions.length, 2)
})

Deno.test("INSPECT takes no arguments", () => {
  assert.equal(only("FROM x\nINSPECT   \n", "Inspect").text, "INSPECT")
  const { diagnostics } = parse("FROM x\nINSPECT now please\n")
  assert.deepEqual(codes(diagnostics), ["unexpected-argument"])
  assert.deepEqual(at(diagnostics[0]), [2, 9, 2, 12])
  assert.equal(diagnostics[0]?.message, "INSPECT takes no arguments")
})

Deno.test("the format reference's examples parse to the expected AST", () => {
  const { imagefile, diagnostics } = parse(
    [
      "FROM scratch",
      "DISK 20 GB MBR",
      'PARTITION 1 SIZE 10 GB FORMAT xfs OPTIONS "-m crc=0" MOUNT / FLAGS boot',
      "COPY source /destination",
      "ADD source.tar.gz /",
      "RUN apk add openssh",
      "INSPECT",
    ].join("\n"),
  )
  assert.deepEqual(diagnostics, [])
  const span = (line: number, column: number, endColumn: number) => ({
    line,
    column,
    endLine: line,
    endColumn,
  })
  assert.deepEqual(imagefile, {
    file: "Imagefile",
    instructions: [
      {
        _tag: "From",
        span: span(1, 1, 13),
        text: "FROM scratch",
        image: { value: "scratch", span: span(1, 6, 13) },
        scratch: true,
      },
      {
        _tag: "Disk",
        span: span(2, 1, 15),
        text: "DISK 20 GB MBR",
        size: { amount: 20, unit: "GB", bytes: 20 * 2 ** 30, span: span(2, 6, 11) },
        table: { value: "mbr", span: span(2, 12, 15) },
      },
      {
        _tag: "Partition",
        span: span(3, 1, 72),
        text: 'PARTITION 1 SIZE 10 GB FORMAT xfs OPTIONS "-m crc=0" MOUNT / FLAGS boot',
        number: { value: 1, span: span(3, 11, 12) },
        size: { amount: 10, unit: "GB", bytes: 10 * 2 ** 30, span: span(3, 18, 23) },
        format: {
          fs: { value: "xfs", span: span(3, 31, 34) },
          options: { value: ["-m", "crc=0"], span: span(3, 43, 53) },
        },
        mount: { value: "/", span: span(3, 60, 61) },
        flags: {
          value: [{ value: "boot", span: span(3, 68, 72) }],
          span: span(3, 68, 72),
        },
      },
      {
        _tag: "Copy",
        span: span(4, 1, 25),
        text: "COPY source /destination",
        sources: [{ value: "source", span: span(4, 6, 12) }],
        destination: { value: "/destination", span: span(4, 13, 25) },
      },
      {
        _tag: "Add",
        span: span(5, 1, 20),
        text: "ADD source.tar.gz /",
        sources: [{ value: "source.tar.gz", span: span(5, 5, 18) }],
        destination: { value: "/", span: span(5, 19, 20) },
      },
      {
        _tag: "Run",
        span: span(6, 1, 20),
        text: "RUN apk add openssh",
        command: { value: "apk add openssh", span: span(6, 5, 20) },
      },
      { _tag: "Inspect", span: span(7, 1, 8), text: "INSPECT" },
    ],
  })
})

Deno.test("syntax errors name what was expected and point at what was found", () => {
  const cases: ReadonlyArray<readonly [string, string, ReadonlyArray<number>]> = [
    ["DISK 20 TB MBR", "invalid DISK instruction: expected MB or GB, found 'TB'", [2, 9, 2, 11]],
    [
      "DISK 20 GB",
      "invalid DISK instruction: expected GPT or MBR, found end of line",
      [2, 11, 2, 11],
    ],
    [
      "DISK big GB GPT",
      "invalid DISK instruction: expected a size (a whole number of MB or GB), found 'big'",
      [2, 6, 2, 9],
    ],
    [
      "PARTITION 1 MOUNTS /",
      "invalid PARTITION instruction: expected FLAGS, FORMAT, MOUNT, OPTIONS, SIZE or end of line, found 'MOUNTS'",
      [2, 13, 2, 19],
    ],
    [
      "PARTITION one MOUNT /",
      "invalid PARTITION instruction: expected a partition number, found 'one'",
      [2, 11, 2, 14],
    ],
    [
      "PARTITION 1 FORMAT xfs OPTIONS -m",
      "invalid PARTITION instruction: expected a double-quoted string such as \"-m crc=0\", found '-m'",
      [2, 32, 2, 34],
    ],
    [
      'PARTITION 1 FORMAT xfs OPTIONS "-m crc=0',
      'invalid PARTITION instruction: expected a closing ", found end of line',
      [2, 41, 2, 41],
    ],
    [
      "PARTITION 1 FLAGS",
      "invalid PARTITION instruction: expected a flag (boot, efi or bios_grub), found end of line",
      [2, 18, 2, 18],
    ],
    ["FROM", "invalid FROM instruction: expected an image spec or scratch, found end of line", [
      2,
      5,
      2,
      5,
    ]],
    ["FROM a b", "invalid FROM instruction: expected end of line, found 'b'", [2, 8, 2, 9]],
    ['COPY "a b /c', 'invalid COPY instruction: expected a closing ", found end of line', [
      2,
      13,
      2,
      13,
    ]],
  ]
  for (const [line, message, position] of cases) {
    const { diagnostics } = parse(`FROM scratch\n${line}\n`)
    const syntax = diagnostics.filter((d) => d.code === "syntax-error")
    assert.equal(syntax.length, 1, `${line}: ${JSON.stringify(diagnostics)}`)
    assert.equal(syntax[0]?.message, message)
    assert.deepEqual(at(syntax[0]), position, line)
  }
})

Deno.test("missing arguments of COPY, ADD and RUN", () => {
  const cases = [
    ["COPY", "COPY needs at least one source and a destination", [2, 5, 2, 5]],
    ["ADD only-one", "ADD needs at least one source and a destination", [2, 5, 2, 13]],
    ["RUN   ", "RUN needs a command", [2, 7, 2, 7]],
  ] as const
  for (const [line, message, position] of cases) {
    const { diagnostics } = parse(`FROM x\n${line}\n`)
    assert.deepEqual(codes(diagnostics), ["missing-argument"], line)
    assert.equal(diagnostics[0]?.message, message)
    assert.deepEqual(at(diagnostics[0]), position, line)
  }
})

Deno.test("one bad line does not hide the others", () => {
  const { imagefile, diagnostics } = parse(
    "FROM x\nDISK nonsense\nRUN ok\nCOPY\nRNU x\nRUN also ok\n",
  )
  assert.deepEqual(imagefile.instructions.map((i) => i.text), ["FROM x", "RUN ok", "RUN also ok"])
  assert.deepEqual(diagnostics.map((d) => [d.line, d.code]), [
    [2, "disk-not-scratch"],
    [2, "syntax-error"],
    [4, "missing-argument"],
    [5, "unknown-instruction"],
  ])
})

Deno.test("unknown instructions suggest the closest keyword", () => {
  const messages = (line: string) =>
    parse(`FROM x\n${line}\n`).diagnostics.filter((d) => d.code === "unknown-instruction")
      .map((d) => d.message)
  assert.deepEqual(messages("RNU echo"), ["unknown instruction 'RNU' (did you mean 'RUN'?)"])
  assert.deepEqual(messages("PARTITON 1"), [
    "unknown instruction 'PARTITON' (did you mean 'PARTITION'?)",
  ])
  assert.deepEqual(messages("copyy a b"), ["unknown instruction 'copyy' (did you mean 'COPY'?)"])
  assert.deepEqual(messages("INVALID command"), [
    "unknown instruction 'INVALID' (expected FROM, DISK, PARTITION, COPY, ADD, RUN or INSPECT)",
  ])
  const { diagnostics } = parse("FROM x\n   INVALID command\n")
  assert.deepEqual(at(diagnostics[0]), [2, 4, 2, 11])
})
