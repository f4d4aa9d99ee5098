/**
 * The Imagefile language: text in, a typed syntax tree and diagnostics out. Pure; nothing here
 * reads files or prints.
 *
 * @example
 * ```ts
 * const { imagefile, diagnostics } = analyzeImagefile("FROM scratch\nDISK 2 GB GPT\n...", "Imagefile")
 * if (hasErrors(diagnostics)) console.error(renderDiagnostics(diagnostics, text))
 * ```
 */
import type { Imagefile, Instruction } from "./ast.ts"
import { byPosition, type Diagnostic, makeDiagnostic } from "./diagnostic.ts"
import { type ParsedLine, parseLine } from "./grammar.ts"
import { logicalLines } from "./source.ts"
import { validate } from "./validate.ts"

export * from "./ast.ts"
export { Diagnostic, hasErrors, renderDiagnostics, Severity } from "./diagnostic.ts"
export { type Keyword, KEYWORDS, splitWords } from "./grammar.ts"
export { summarizeImagefile } from "./summary.ts"

export interface Analysis {
  /** The instructions that parsed, in order (all of them when there is no error). */
  readonly imagefile: Imagefile
  /** Every problem found, in reading order; any `error` means the Imagefile is invalid. */
  readonly diagnostics: ReadonlyArray<Diagnostic>
}

/** Parse and validate the text of an Imagefile; `file` names it in diagnostics. Never throws. */
export const analyzeImagefile = (text: string, file: string): Analysis => {
  const source = logicalLines(text)
  const diagnostics: Array<Diagnostic> = source.notes.map((note) =>
    makeDiagnostic(file, note.span, note.code, note.message, "warning")
  )
  const lines: Array<ParsedLine> = []
  const instructions: Array<Instruction> = []
  for (const logical of source.logical) {
    const result = parseLine(file, logical)
    diagnostics.push(...result.diagnostics)
    if (result.line === undefined) continue
    lines.push(result.line)
    if (result.line.instruction !== undefined) instructions.push(result.line.instruction)
  }
  diagnostics.push(...validate(file, lines))
  return { imagefile: { file, instructions }, diagnostics: diagnostics.sort(byPosition) }
}
