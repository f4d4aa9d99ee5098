/**
 * Diagnostics: what is wrong (or suspicious) in an Imagefile, where, and how to show it the way
 * a compiler does.
 */
import * as Schema from "effect/Schema"
import type { Span } from "./ast.ts"
import { physicalLines } from "./source.ts"

export const Severity = Schema.Literal("error", "warning")
export type Severity = typeof Severity.Type

/** One problem; the JSON output of `transient check --json` is an array of these. */
export const Diagnostic = Schema.Struct({
  file: Schema.String,
  /** 1-based; `endColumn` is the column just past the last character of the span. */
  line: Schema.Number,
  column: Schema.Number,
  endLine: Schema.Number,
  endColumn: Schema.Number,
  severity: Severity,
  /** Stable and kebab-case (`unknown-instruction`, `from-count`), for tools and tests. */
  code: Schema.String,
  message: Schema.String,
})
export type Diagnostic = typeof Diagnostic.Type

export const makeDiagnostic = (
  file: string,
  span: Span,
  code: string,
  message: string,
  severity: Severity = "error",
): Diagnostic => ({
  file,
  line: span.line,
  column: span.column,
  endLine: span.endLine,
  endColumn: span.endColumn,
  severity,
  code,
  message,
})

export const hasErrors = (diagnostics: ReadonlyArray<Diagnostic>): boolean =>
  diagnostics.some((diagnostic) => diagnostic.severity === "error")

/** In reading order: by position, then errors before warnings. */
export const byPosition = (a: Diagnostic, b: Diagnostic): number =>
  a.line - b.line || a.column - b.column ||
  (a.severity === b.severity ? 0 : a.severity === "error" ? -1 : 1)

/**
 * `text` safe to print on a terminal: control characters (but tabs) become the Unicode symbols
 * that picture them, one column each as the originals, so carets still line up and no escape
 * sequence in an Imagefile reaches the terminal.
 */
const visible = (text: string): string =>
  // deno-lint-ignore no-control-regex -- control characters are what this replaces.
  text.replace(/[\x00-\x08\x0a-\x1f\x7f\x80-\x9f]/g, (char) => {
    const code = char.charCodeAt(0)
    if (code < 0x20) return String.fromCharCode(0x2400 + code)
    return code === 0x7f ? "\u2421" : "\ufffd"
  })

/**
 * Render diagnostics like a compiler: `file:line:col: severity: message`, the source line, and
 * a caret line under the span (`^~~~`). A span over several lines is underlined to the end of
 * its first line.
 */
export const renderDiagnostics = (
  diagnostics: ReadonlyArray<Diagnostic>,
  text: string,
): string => {
  const lines = physicalLines(text)
  return diagnostics.map((diagnostic) => {
    const header = visible(
      `${diagnostic.file}:${diagnostic.line}:${diagnostic.column}: ${diagnostic.severity}: ${diagnostic.message}`,
    )
    const line = lines[diagnostic.line - 1]
    const source = line === undefined ? undefined : visible(line)
    if (source === undefined) return header
    const start = Math.min(Math.max(diagnostic.column - 1, 0), source.length)
    const end = diagnostic.endLine > diagnostic.line
      ? Math.max(source.trimEnd().length, start + 1)
      : Math.max(diagnostic.endColumn - 1, start + 1)
    // Keep tabs in the indentation so the caret lines up however the terminal shows them.
    const indent = source.slice(0, start).replace(/[^\t]/g, " ")
    const marker = "^" + "~".repeat(end - start - 1)
    return `${header}\n  ${source}\n  ${indent}${marker}`
  }).join("\n")
}
