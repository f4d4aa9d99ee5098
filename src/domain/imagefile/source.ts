/**
 * Imagefile source text as logical lines: a UTF-8 BOM dropped, CRLF/CR/LF line ends, comment
 * and blank lines skipped, `\` continuations joined. Each logical line can map any offset in
 * its joined text back to a line and column of the file, so diagnostics point at what the user
 * wrote.
 */
import type { Span } from "./ast.ts"

/** A run of joined text that came from one physical line, starting at `column` of `line`. */
interface Segment {
  readonly offset: number
  readonly line: number
  readonly column: number
}

export interface Position {
  readonly line: number
  readonly column: number
}

export class LogicalLine {
  constructor(
    /** The joined text, each `\`+newline removed (as Docker does), no line ends. */
    readonly text: string,
    private readonly segments: ReadonlyArray<Segment>,
  ) {}

  /** The file position of the character at `offset` (or just past the end). */
  positionAt(offset: number): Position {
    const segments = this.segments
    let found = segments[0]!
    for (let i = 1; i < segments.length; i++) {
      const segment = segments[i]!
      if (segment.offset > offset) break
      // An empty segment shares its offset with the next one: prefer the one with text.
      if (segment.offset === offset && offset === this.text.length) break
      found = segment
    }
    return { line: found.line, column: found.column + (offset - found.offset) }
  }

  /** The span of the text between two offsets; `endColumn` is just past the last character. */
  span(start: number, end: number): Span {
    const from = this.positionAt(start)
    if (end <= start) return { ...from, endLine: from.line, endColumn: from.column }
    const last = this.positionAt(end - 1)
    return { ...from, endLine: last.line, endColumn: last.column + 1 }
  }
}

/** A note about the layout of the text itself (not about any instruction). */
export interface LayoutNote {
  readonly code: string
  readonly message: string
  readonly span: Span
}

export interface SourceLines {
  readonly physical: ReadonlyArray<string>
  readonly logical: ReadonlyArray<LogicalLine>
  readonly notes: ReadonlyArray<LayoutNote>
}

const BOM = "\uFEFF"
const blank = /^[ \t\f\v]*$/
const comment = /^[ \t\f\v]*#/
/** A `\` as the last non-blank character, and the blanks after it. */
const continuation = /\\[ \t\f\v]*$/

/** The physical lines of `text`, without line ends or a leading BOM. */
export const physicalLines = (text: string): ReadonlyArray<string> =>
  (text.startsWith(BOM) ? text.slice(1) : text).split(/\r\n|\n|\r/)

/** Split `text` into logical lines. */
export const logicalLines = (text: string): SourceLines => {
  const physical = physicalLines(text)
  const logical: Array<LogicalLine> = []
  const notes: Array<LayoutNote> = []
  let pending: { text: string; segments: Array<Segment> } | undefined

  for (let index = 0; index < physical.length; index++) {
    const raw = physical[index]!
    const line = index + 1
    if (comment.test(raw)) continue
    if (blank.test(raw)) {
      if (pending !== undefined) {
        notes.push({
          code: "empty-continuation-line",
          message: "empty line inside a continued instruction; the instruction goes on after it",
          span: { line, column: 1, endLine: line, endColumn: 1 },
        })
      }
      continue
    }
    const match = continuation.exec(raw)
    const content = match === null ? raw : raw.slice(0, match.index)
    const current = pending ?? { text: "", segments: [] }
    current.segments.push({ offset: current.text.length, line, column: 1 })
    current.text += content
    if (match === null) {
      logical.push(new LogicalLine(current.text, current.segments))
      pending = undefined
    } else {
      pending = current
    }
  }
  // A continuation on the last line simply ends the instruction.
  if (pending !== undefined && !blank.test(pending.text)) {
    logical.push(new LogicalLine(pending.text, pending.segments))
  }
  return { physical, logical, notes }
}
