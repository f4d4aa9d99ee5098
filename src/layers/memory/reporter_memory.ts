/**
 * A Reporter that records what it is told, for tests.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Reporter, type StepSummary } from "../../services/reporter.ts"

export type ReportEvent =
  | {
    readonly event: "step-start"
    readonly step: number
    readonly total: number
    readonly text: string
  }
  | { readonly event: "step-end"; readonly step: number; readonly durationMs: number }
  | { readonly event: "detail"; readonly line: string }
  | { readonly event: "output"; readonly stream: string; readonly text: string }
  | { readonly event: "warning" | "info" | "failure"; readonly message: string }
  | { readonly event: "progress"; readonly label: string; readonly bytes: number }
  | { readonly event: "result"; readonly name: string; readonly steps: ReadonlyArray<StepSummary> }

export class ReportLog {
  readonly events: Array<ReportEvent> = []
  /** The step lines, as a terminal would show them. */
  stepLines(): ReadonlyArray<string> {
    return this.events.flatMap((e) =>
      e.event === "step-start" ? [`Step ${e.step}/${e.total} : ${e.text}`] : []
    )
  }
  output(): string {
    return this.events.map((e) => (e.event === "output" ? e.text : "")).join("")
  }
}

export const ReporterMemory = (log: ReportLog) => {
  const decoder = new TextDecoder()
  const record = (event: ReportEvent) => Effect.sync(() => void log.events.push(event))
  return Layer.succeed(Reporter, {
    stepStart: (step, total, text) => record({ event: "step-start", step, total, text }),
    stepEnd: (step, _total, durationMs) => record({ event: "step-end", step, durationMs }),
    detail: (line) => record({ event: "detail", line }),
    output: (stream, chunk) => record({ event: "output", stream, text: decoder.decode(chunk) }),
    warn: (message) => record({ event: "warning", message }),
    info: (message) => record({ event: "info", message }),
    progress: (label) =>
      Effect.sync(() => {
        let bytes = 0
        return {
          advance: (n: number) => Effect.sync(() => void (bytes += n)),
          done: record({ event: "progress", label, bytes }),
        }
      }),
    result: (summary) => record({ event: "result", name: summary.name, steps: summary.steps }),
    failure: (message) => record({ event: "failure", message }),
  })
}
