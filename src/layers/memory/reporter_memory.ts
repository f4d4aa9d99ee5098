/**
 * A Reporter that records what it is told, for tests: the same events the console reporter
 * prints with `--progress json`.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { decodeBase64 } from "effect/Encoding"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { concatBytes } from "../../domain/bytes.ts"
import { outputEvent, type ReportEvent } from "../../domain/report_event.ts"
import { Reporter } from "../../services/reporter.ts"

export type { ReportEvent }

export class ReportLog {
  readonly events: Array<ReportEvent> = []
  /** The step lines, as a terminal would show them. */
  stepLines(): ReadonlyArray<string> {
    return this.events.flatMap((e) =>
      e.event === "step-start" ? [`Step ${e.step}/${e.total} : ${e.text}`] : []
    )
  }
  /** The steps' output, both streams as they came, decoded as a whole. */
  output(): string {
    const encoder = new TextEncoder()
    const chunks = this.events.flatMap((e) => {
      if (e.event !== "output") return []
      return ["text" in e ? encoder.encode(e.text) : Either.getOrThrow(decodeBase64(e.base64))]
    })
    const bytes = concatBytes(chunks)
    return new TextDecoder().decode(bytes)
  }
}

export const ReporterMemory = (log: ReportLog) => {
  const record = (event: ReportEvent) => Effect.sync(() => void log.events.push(event))
  return Layer.succeed(Reporter, {
    stepStart: (step, total, text) => record({ event: "step-start", step, total, text }),
    stepEnd: (step, total, durationMs, options = {}) =>
      record({ event: "step-end", step, total, durationMs: Math.round(durationMs), ...options }),
    detail: (text) => record({ event: "detail", text }),
    output: (stream, chunk) => record(outputEvent(stream, chunk)),
    warn: (message) => record({ event: "warning", message }),
    info: (message) => record({ event: "info", message }),
    // The first and the last event of each transfer (the console paces the ones between).
    progress: (label, total, options) =>
      Effect.gen(function* () {
        const started = yield* Clock.currentTimeMillis
        const fields = { label, total: total ?? null, ...options }
        yield* record({ event: "progress", ...fields, bytes: 0 })
        let bytes = 0
        let finished = false
        return {
          advance: (n: number) => Effect.sync(() => void (bytes += n)),
          done: Effect.gen(function* () {
            if (finished) return
            finished = true
            const durationMs = (yield* Clock.currentTimeMillis) - started
            yield* record({ event: "progress", ...fields, bytes, done: true, durationMs })
          }),
        }
      }),
    result: (summary) => record({ event: "result", ...summary }),
    pulled: (image) => record({ event: "result", ...image }),
    failure: (message, tag) =>
      record({ event: "error", message, ...(tag === undefined ? {} : { _tag: tag }) }),
  })
}
