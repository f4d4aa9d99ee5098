/**
 * The Imagefile grammar (parsimmon), applied one logical line at a time so that a bad line
 * never hides the problems of the others. Parsing never throws: what does not parse becomes a
 * diagnostic.
 *
 * Words of COPY/ADD (and the words inside OPTIONS) are split like a shell would: blanks
 * separate them, and `"..."` (with `\"` and `\\` escapes) or `'...'` group a word that holds
 * blanks. Nothing else is interpreted: no variables, no globs.
 */
import P from "parsimmon"
import type * as Ast from "./ast.ts"
import { type Diagnostic, makeDiagnostic } from "./diagnostic.ts"
import type { LogicalLine } from "./source.ts"
import { closestWord } from "./suggest.ts"

export const KEYWORDS = ["FROM", "DISK", "PARTITION", "COPY", "ADD", "RUN", "INSPECT"] as const
export type Keyword = typeof KEYWORDS[number]

/** A logical line whose keyword is known, with its instruction when the rest parsed. */
export interface ParsedLine {
  readonly keyword: Keyword
  readonly span: Ast.Span
  readonly instruction: Ast.Instruction | undefined
}

export interface LineResult {
  readonly line: ParsedLine | undefined
  readonly diagnostics: ReadonlyArray<Diagnostic>
}

// ---------------------------------------------------------------------------------------------
// Tokens. Each token skips the blanks after it; a token ends at a blank or at the end of line.

/** A value and the offsets of the text it was read from (end exclusive). */
interface Mark<T> {
  readonly start: number
  readonly end: number
  readonly value: T
}

// Offsets only: parsimmon's own `mark()`, `index` and `parse()` compute lines and columns through
// a global cache keyed by every input (which grows without bound, and breaks on the input
// `__proto__` under Deno). Logical lines map offsets to file positions themselves.
const position: P.Parser<number> = P((_input, i) => P.makeSuccess(i, i))
const mark = <T>(parser: P.Parser<T>): P.Parser<Mark<T>> =>
  P.seqMap(position, parser, position, (start, value, end) => ({ start, value, end }))

type Outcome<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly offset: number; readonly expected: ReadonlyArray<string> }

/** The raw reply of a parsimmon parser (stable across parsimmon 1.x, which is pinned). */
interface Reply<T> {
  readonly status: boolean
  readonly value: T
  readonly furthest: number
  readonly expected: ReadonlyArray<string>
}

/** Run `parser` over the whole of `text`. */
const run = <T>(parser: P.Parser<T>, text: string): Outcome<T> => {
  const whole = parser.skip(P.eof) as unknown as { _: (input: string, i: number) => Reply<T> }
  const reply = whole._(text, 0)
  return reply.status
    ? { ok: true, value: reply.value }
    : { ok: false, offset: reply.furthest, expected: reply.expected }
}

const blanks = P.regexp(/[ \t\f\v]*/)
const lexeme = <T>(parser: P.Parser<T>): P.Parser<T> => parser.skip(blanks)
const endOfWord = "(?![^ \\t\\f\\v])"
const token = (pattern: string, description: string, flags = ""): P.Parser<Mark<string>> =>
  lexeme(mark(P.regexp(new RegExp(pattern + endOfWord, flags)).desc(description)))
const keyword = (word: string) => token(word, word, "i")
const endOfLine = P.eof.desc("end of line")

const anyWord = (description: string) => token("[^ \\t\\f\\v]+", description)

/** The body of a double-quoted string: `\"` and `\\` are escapes, other backslashes stay. */
const unescape = (body: string): string => body.replace(/\\(["\\])/g, "$1")

/** A double-quoted string; `opening` describes what was expected where the quote is missing. */
const quotedString = (opening: string) =>
  P.seqMap(
    P.string('"').desc(opening),
    P.regexp(/(?:[^"\\]|\\[^])*/),
    P.string('"').desc('a closing "'),
    (_open, body) => unescape(body),
  )
const doubleQuoted = quotedString("a path")
const singleQuoted = P.seqMap(
  P.string("'"),
  P.regexp(/[^']*/),
  P.string("'").desc("a closing '"),
  (_open, body) => body,
)
const bare = P.regexp(/[^ \t\f\v"']+/).desc("a path")

/** A shell-like word: bare text and quoted parts, glued together. */
const shellWord = P.alt(bare, doubleQuoted, singleQuoted).atLeast(1).map((parts) => parts.join(""))
const shellWords = blanks.then(lexeme(shellWord).many())

/** Split `text` into words like a shell would, or undefined for an unterminated quote. */
export const splitWords = (text: string): ReadonlyArray<string> | undefined => {
  const result = run(shellWords, text)
  return result.ok ? result.value : undefined
}

// ---------------------------------------------------------------------------------------------
// Instruction bodies: what follows the keyword.

interface RawSize {
  readonly amount: Mark<string>
  readonly unit: Mark<string>
}

const size: P.Parser<RawSize> = P.seqMap(
  lexeme(mark(P.regexp(/\d+/).desc("a size (a whole number of MB or GB)"))),
  token("[MG]B", "MB or GB", "i"),
  (amount, unit) => ({ amount, unit }),
)

type Clause =
  | { readonly kind: "SIZE"; readonly keyword: Mark<string>; readonly size: RawSize }
  | { readonly kind: "FORMAT"; readonly keyword: Mark<string>; readonly fs: Mark<string> }
  | { readonly kind: "OPTIONS"; readonly keyword: Mark<string>; readonly options: Mark<string> }
  | { readonly kind: "MOUNT"; readonly keyword: Mark<string>; readonly path: Mark<string> }
  | {
    readonly kind: "FLAGS"
    readonly keyword: Mark<string>
    readonly flags: ReadonlyArray<Mark<string>>
  }

const optionsString = lexeme(mark(
  quotedString('a double-quoted string such as "-m crc=0"')
    .skip(P.lookahead(/(?:[ \t\f\v]|$)/).desc("a blank after the closing quote")),
))

const clause: P.Parser<Clause> = P.alt<Clause>(
  P.seqMap(keyword("SIZE"), size, (kw, size) => ({ kind: "SIZE", keyword: kw, size })),
  P.seqMap(
    keyword("FORMAT"),
    anyWord("a filesystem (ext2, ext3, ext4, xfs, vfat or swap)"),
    (kw, fs) => ({ kind: "FORMAT", keyword: kw, fs }),
  ),
  P.seqMap(
    keyword("OPTIONS"),
    optionsString,
    (kw, options) => ({ kind: "OPTIONS", keyword: kw, options }),
  ),
  P.seqMap(
    keyword("MOUNT"),
    anyWord("a mount path such as /boot"),
    (kw, path) => ({ kind: "MOUNT", keyword: kw, path }),
  ),
  P.seqMap(
    keyword("FLAGS"),
    lexeme(mark(P.regexp(/[^ \t\f\v,]+/).desc("a flag (boot, efi or bios_grub)")))
      .sepBy1(lexeme(P.string(","))),
    (kw, flags) => ({ kind: "FLAGS", keyword: kw, flags }),
  ),
)

type Body =
  | { readonly kind: "FROM"; readonly image: Mark<string> }
  | { readonly kind: "DISK"; readonly size: RawSize; readonly table: Mark<string> }
  | {
    readonly kind: "PARTITION"
    readonly number: Mark<string>
    readonly clauses: ReadonlyArray<Clause>
  }
  | { readonly kind: "COPY" | "ADD"; readonly words: ReadonlyArray<Mark<string>> }
  | { readonly kind: "RUN"; readonly command: Mark<string> }
  | { readonly kind: "INSPECT" }

const bodies: Record<Keyword, P.Parser<Body>> = {
  FROM: anyWord("an image spec or scratch").skip(endOfLine).map((image) => ({
    kind: "FROM",
    image,
  })),
  DISK: P.seqMap(
    size,
    token("GPT|MBR", "GPT or MBR", "i"),
    (size, table): Body => ({ kind: "DISK", size, table }),
  ).skip(endOfLine),
  PARTITION: P.seqMap(
    token("\\d+", "a partition number"),
    clause.many(),
    (number, clauses): Body => ({ kind: "PARTITION", number, clauses }),
  ).skip(endOfLine.desc(["SIZE", "FORMAT", "OPTIONS", "MOUNT", "FLAGS", "end of line"])),
  COPY: lexeme(mark(shellWord)).many().skip(endOfLine).map((words) => ({ kind: "COPY", words })),
  ADD: lexeme(mark(shellWord)).many().skip(endOfLine).map((words) => ({ kind: "ADD", words })),
  RUN: mark(P.regexp(/[^]*/)).map((command) => ({ kind: "RUN", command })),
  INSPECT: endOfLine.map(() => ({ kind: "INSPECT" })),
}

const head = P.seq(blanks, lexeme(mark(P.regexp(/[^ \t\f\v]+/)))).map(([, word]) => word)

// ---------------------------------------------------------------------------------------------
// From parse results to the AST.

const isKeyword = (word: string): word is Keyword =>
  (KEYWORDS as ReadonlyArray<string>).includes(word)

export const joinOr = (words: ReadonlyArray<string>): string =>
  words.length <= 1
    ? words.join("")
    : `${words.slice(0, -1).join(", ")} or ${words[words.length - 1]}`

const UNITS = { MB: 2 ** 20, GB: 2 ** 30 } as const

/** Where a marked word of `line` is, with its value. */
const locatedIn = (line: LogicalLine) => <A>(mark: Mark<unknown>, value: A) => ({
  value,
  span: line.span(mark.start, mark.end),
})

/** A size clause of `line`: its amount, unit and bytes. */
const sizeIn = (line: LogicalLine, raw: RawSize): Ast.Size => {
  const amount = Number(raw.amount.value)
  const unit = raw.unit.value.toUpperCase() as keyof typeof UNITS
  return {
    amount,
    unit,
    bytes: amount * UNITS[unit],
    span: line.span(raw.amount.start, raw.unit.end),
  }
}

/** What the parts of one line's parse share: the line, its whole span and text, its reports. */
interface LineParse {
  readonly line: LogicalLine
  readonly common: { readonly span: Ast.Span; readonly text: string }
  readonly report: (at: Ast.Span, code: string, message: string) => void
}

/** A PARTITION's clauses, each at most once, OPTIONS only after FORMAT. */
const partitionOf = (
  { line, common, report }: LineParse,
  number: Mark<string>,
  clauses: ReadonlyArray<Clause>,
): Ast.Partition => {
  const located = locatedIn(line)
  const wordSpan = (mark: Mark<string>) => line.span(mark.start, mark.end)
  const seen = new Set<string>()
  let size: Ast.Size | undefined
  let format: { fs: Ast.Format["fs"]; options?: Ast.Format["options"] } | undefined
  let mount: Ast.Partition["mount"]
  let flags: Ast.Partition["flags"]
  for (const clause of clauses) {
    if (seen.has(clause.kind)) {
      report(
        wordSpan(clause.keyword),
        "duplicate-clause",
        `${clause.kind} is given more than once in this PARTITION (each clause may appear once)`,
      )
      continue
    }
    seen.add(clause.kind)
    switch (clause.kind) {
      case "SIZE":
        size = sizeIn(line, clause.size)
        break
      case "FORMAT":
        format = { fs: located(clause.fs, clause.fs.value.toLowerCase()) }
        break
      case "OPTIONS": {
        if (format === undefined) {
          report(
            wordSpan(clause.keyword),
            "options-without-format",
            "OPTIONS must come after a FORMAT clause (they are passed to its mkfs)",
          )
          break
        }
        const words = splitWords(clause.options.value)
        if (words === undefined) {
          report(wordSpan(clause.options), "syntax-error", "unterminated quote inside OPTIONS")
          break
        }
        format = { ...format, options: located(clause.options, words) }
        break
      }
      case "MOUNT":
        mount = located(clause.path, clause.path.value)
        break
      case "FLAGS": {
        const first = clause.flags[0]!
        const last = clause.flags[clause.flags.length - 1]!
        flags = {
          value: clause.flags.map((flag) => located(flag, flag.value.toLowerCase())),
          span: line.span(first.start, last.end),
        }
        break
      }
    }
  }
  return {
    _tag: "Partition",
    ...common,
    number: located(number, Number(number.value)),
    ...(size === undefined ? {} : { size }),
    ...(format === undefined ? {} : { format }),
    ...(mount === undefined ? {} : { mount }),
    ...(flags === undefined ? {} : { flags }),
  }
}

/** The instruction a line's parsed body is, or none (its problem reported). */
const instructionOf = (parse: LineParse, body: Body, end: number): Ast.Instruction | undefined => {
  const { line, common, report } = parse
  const located = locatedIn(line)
  const wordSpan = (mark: Mark<string>) => line.span(mark.start, mark.end)
  switch (body.kind) {
    case "FROM":
      return {
        _tag: "From",
        ...common,
        image: located(body.image, body.image.value),
        scratch: body.image.value.toLowerCase() === "scratch",
      }
    case "DISK":
      return {
        _tag: "Disk",
        ...common,
        size: sizeIn(line, body.size),
        table: located(body.table, body.table.value.toLowerCase() as Ast.PartitionTable),
      }
    case "PARTITION":
      return partitionOf(parse, body.number, body.clauses)
    case "COPY":
    case "ADD": {
      const destination = body.words[body.words.length - 1]
      if (body.words.length < 2 || destination === undefined) {
        report(
          body.words.length === 0 ? line.span(end, end) : wordSpan(body.words[0]!),
          "missing-argument",
          `${body.kind} needs at least one source and a destination`,
        )
        return undefined
      }
      return {
        _tag: body.kind === "COPY" ? "Copy" : "Add",
        ...common,
        sources: body.words.slice(0, -1).map((word) => located(word, word.value)),
        destination: located(destination, destination.value),
      }
    }
    case "RUN": {
      const command = body.command.value.trimEnd()
      const from = body.command.start
      if (command.length === 0) {
        report(line.span(from, from), "missing-argument", "RUN needs a command")
        return undefined
      }
      return {
        _tag: "Run",
        ...common,
        command: { value: command, span: line.span(from, from + command.length) },
      }
    }
    case "INSPECT":
      return { _tag: "Inspect", ...common }
  }
}

/** Parse one logical line of `file`. */
export const parseLine = (file: string, line: LogicalLine): LineResult => {
  const text = line.text
  const start = text.length - text.trimStart().length
  const end = text.trimEnd().length
  const span = line.span(start, end)
  const wordSpan = (mark: Mark<string>) => line.span(mark.start, mark.end)
  const diagnostics: Array<Diagnostic> = []
  const report = (at: Ast.Span, code: string, message: string) =>
    diagnostics.push(makeDiagnostic(file, at, code, message))

  const word = run(head.skip(P.all), text)
  if (!word.ok) return { line: undefined, diagnostics }
  const written = word.value.value
  const name = written.toUpperCase()
  if (!isKeyword(name)) {
    const suggestion = closestWord(written, KEYWORDS)
    report(
      wordSpan(word.value),
      "unknown-instruction",
      suggestion === undefined
        ? `unknown instruction '${written}' (expected ${joinOr(KEYWORDS)})`
        : `unknown instruction '${written}' (did you mean '${suggestion}'?)`,
    )
    return { line: undefined, diagnostics }
  }

  const parsed = run(head.then(bodies[name]), text)
  if (!parsed.ok) {
    const offset = parsed.offset
    const found = /^[^ \t\f\v]+/.exec(text.slice(offset))?.[0]
    const at = line.span(offset, offset + (found?.length ?? 0))
    if (name === "INSPECT") {
      report(at, "unexpected-argument", "INSPECT takes no arguments")
    } else {
      const expected = joinOr([...new Set(parsed.expected)])
      report(
        at,
        "syntax-error",
        `invalid ${name} instruction: expected ${expected}, found ${
          found === undefined ? "end of line" : `'${found}'`
        }`,
      )
    }
    return { line: { keyword: name, span, instruction: undefined }, diagnostics }
  }

  const common = { span, text: text.slice(start, end) }

  const instruction = instructionOf({ line, common, report }, parsed.value, end)
  return { line: { keyword: name, span, instruction }, diagnostics }
}
