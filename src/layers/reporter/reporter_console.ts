/**
 * ReporterConsole: the Reporter on the process's stdout/stderr. Text for people (`Step i/N : ...`
 * lines, live output, a progress bar on a terminal or periodic progress lines in logs), or one
 * JSON object per line and event with `--progress json`, for CI systems.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { encodeBase64 } from "effect/Encoding"
import { formatBytes } from "../../domain/byte_size.ts"
import {
  type BuildSummary,
  type OutputStream,
  type Progress,
  Reporter,
  type ReporterShape,
} from "../../services/reporter.ts"
import {
  fractionOf,
  type ProgressSnapshot,
  renderBar,
  renderDone,
  renderLine,
} from "./progress_format.ts"

export type ProgressMode = "auto" | "plain" | "json"

export const PROGRESS_MODES: ReadonlyArray<ProgressMode> = ["auto", "plain", "json"]

/** Where the reporter writes and what it knows of the terminal; injected so tests can read it. */
export interface ConsoleSink {
  readonly stdout: (bytes: Uint8Array) => void
  readonly stderr: (bytes: Uint8Array) => void
  /** Whether stderr (where progress goes) is a terminal. */
  readonly isTerminal: boolean
  readonly columns: () => number
  /** Milliseconds on a monotonic clock. */
  readonly now: () => number
}

const writeAll = (file: { writeSync(p: Uint8Array): number }) => (bytes: Uint8Array) => {
  let offset = 0
  while (offset < bytes.length) offset += file.writeSync(bytes.subarray(offset))
}

/** The process's own stdout and stderr. */
export const denoSink = (): ConsoleSink => ({
  stdout: writeAll(Deno.stdout),
  stderr: writeAll(Deno.stderr),
  isTerminal: Deno.stderr.isTerminal(),
  columns: () => {
    try {
      // A terminal may report no size at all (a bare pty).
      const { columns } = Deno.consoleSize()
      return columns >= 20 ? columns : 80
    } catch {
      return 80
    }
  },
  now: () => performance.now(),
})

/** Plain progress lines: one per this many ms, or per tenth of the total... */
const PLAIN_INTERVAL_MS = 5000
/** ...but never closer together than this. */
const PLAIN_MINIMUM_MS = 1000
/** JSON progress events: at most one per this many ms, or per tenth of the total. */
const JSON_INTERVAL_MS = 1000
/** Terminal redraws: often enough to look live, rarely enough to cost nothing. */
const BAR_INTERVAL_MS = 100

const encoder = new TextEncoder()
const strictDecoder = new TextDecoder("utf-8", { fatal: true })

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/** What follows `Successfully built`: the image's sizes, then the time each step took. */
export const buildSummary = (summary: BuildSummary): string => {
  const total = summary.steps.length
  const width = `Step ${total}/${total}`.length
  const steps = summary.steps.map((step) =>
    `  ${`Step ${step.index}/${total}`.padEnd(width)}  ${
      seconds(step.durationMs).padStart(7)
    }  ${step.text}\n`
  )
  return `  virtual size ${formatBytes(summary.virtualSize)}, on disk ${
    formatBytes(summary.actualSize)
  }, built in ${seconds(summary.durationMs)}\n${steps.join("")}`
}

/** Build the reporter's operations over `sink` (the layer below wraps this). */
export const makeReporterConsole = (mode: ProgressMode, sink: ConsoleSink): ReporterShape => {
  const json = mode === "json"
  const bar = mode === "auto" && sink.isTerminal
  // A bar occupies the last stderr line; anything else printed must clear it first.
  let barShown = false

  const clearBar = () => {
    if (barShown) {
      sink.stderr(encoder.encode("\r\x1b[K"))
      barShown = false
    }
  }
  const out = (text: string) => {
    clearBar()
    sink.stdout(encoder.encode(text))
  }
  const err = (text: string) => {
    clearBar()
    sink.stderr(encoder.encode(text))
  }
  const event = (fields: Record<string, unknown>) => out(`${JSON.stringify(fields)}\n`)

  const outputEvent = (stream: OutputStream, chunk: Uint8Array) => {
    try {
      event({ event: "output", stream, text: strictDecoder.decode(chunk) })
    } catch {
      event({ event: "output", stream, base64: encodeBase64(chunk) })
    }
  }

  const startProgress = (label: string, total: number | undefined): Progress => {
    const started = sink.now()
    let bytes = 0
    let lastAt = started
    let lastTenth = 0
    let finished = false
    const snapshot = (): ProgressSnapshot => ({
      label,
      bytes,
      total,
      elapsedMs: sink.now() - started,
    })
    // Due after `intervalMs`, or sooner at each new tenth of the total (but not more than
    // `minimumMs` apart, so a fast transfer does not flood the log).
    const due = (intervalMs: number, minimumMs: number): boolean => {
      const now = sink.now()
      const fraction = fractionOf(snapshot())
      const tenth = fraction === undefined ? lastTenth : Math.floor(fraction * 10)
      const elapsed = now - lastAt
      if (elapsed < intervalMs && (tenth === lastTenth || elapsed < minimumMs)) return false
      lastAt = now
      lastTenth = tenth
      return true
    }
    const report = () => {
      if (json) {
        if (due(JSON_INTERVAL_MS, 0)) {
          event({ event: "progress", label, bytes, total: total ?? null })
        }
      } else if (bar) {
        if (sink.now() - lastAt >= BAR_INTERVAL_MS || !barShown) {
          lastAt = sink.now()
          sink.stderr(encoder.encode(`\r${renderBar(snapshot(), sink.columns())}\x1b[K`))
          barShown = true
        }
      } else if (due(PLAIN_INTERVAL_MS, PLAIN_MINIMUM_MS)) {
        err(`${renderLine(snapshot())}\n`)
      }
    }
    if (json) event({ event: "progress", label, bytes: 0, total: total ?? null })
    else if (!bar) err(`${label}...\n`)
    return {
      advance: (count) =>
        Effect.sync(() => {
          if (finished) return
          bytes += count
          report()
        }),
      done: Effect.sync(() => {
        if (finished) return
        finished = true
        const final = snapshot()
        if (json) {
          event({
            event: "progress",
            label,
            bytes,
            total: total ?? null,
            done: true,
            durationMs: Math.round(final.elapsedMs),
          })
        } else {
          err(`${renderDone(final)}\n`)
        }
      }),
    }
  }

  return {
    stepStart: (index, total, text) =>
      Effect.sync(() =>
        json
          ? event({ event: "step-start", step: index, total, text })
          : out(`Step ${index}/${total} : ${text}\n`)
      ),
    stepEnd: (index, total, durationMs) =>
      Effect.sync(() => {
        if (json) {
          event({ event: "step-end", step: index, total, durationMs: Math.round(durationMs) })
        }
      }),
    detail: (line) =>
      Effect.sync(() => json ? event({ event: "detail", text: line }) : out(` ---> ${line}\n`)),
    output: (stream, chunk) =>
      Effect.sync(() => {
        if (json) outputEvent(stream, chunk)
        else {
          // Both streams go to stdout, interleaved as they came, like `docker build`.
          clearBar()
          sink.stdout(chunk)
        }
      }),
    warn: (message) =>
      Effect.sync(() => json ? event({ event: "warning", message }) : err(`warning: ${message}\n`)),
    info: (message) =>
      Effect.sync(() => json ? event({ event: "info", message }) : out(`${message}\n`)),
    progress: (label, total) => Effect.sync(() => startProgress(label, total)),
    result: (summary: BuildSummary) =>
      Effect.sync(() =>
        json
          ? event({ event: "result", ...summary })
          : out(`Successfully built ${summary.name}\n${summary.path}\n${buildSummary(summary)}`)
      ),
    failure: (message) =>
      Effect.sync(() => json ? event({ event: "error", message }) : err(`error: ${message}\n`)),
  }
}

/** The Reporter on this process's stdout/stderr (or on `sink`). */
export const ReporterConsole = (
  mode: ProgressMode,
  sink: ConsoleSink = denoSink(),
): Layer.Layer<Reporter> => Layer.sync(Reporter, () => makeReporterConsole(mode, sink))
