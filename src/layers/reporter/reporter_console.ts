/**
 * ReporterConsole: the Reporter on the process's stdout/stderr. Text for people (`Step i/N : ...`
 * lines, live output, a progress bar on a terminal or periodic progress lines in logs), or one
 * JSON object per line and event with `--progress json`, for CI systems: the events of
 * src/domain/report_event.ts, encoded with their Schema (docs/progress-events.md).
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { formatBytes } from "../../domain/byte_size.ts"
import {
  encodeReportEvent,
  isPullResult,
  outputEvent,
  type ProgressPhase,
  type PulledImage,
  type ReportEvent,
} from "../../domain/report_event.ts"
import {
  type BuildSummary,
  type Progress,
  type ProgressMode,
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

const pulledLine = (image: PulledImage): string =>
  image.present
    ? `Image '${image.name}' is already in the store: ${image.path}`
    : `Pulled '${image.name}' (${formatBytes(image.virtualSize)} virtual, ` +
      `${formatBytes(image.actualSize)} on disk): ${image.path}`

/** The events that are one piece of text each; output and progress are streamed live. */
type DiscreteEvent = Exclude<ReportEvent, { readonly event: "output" | "progress" }>

/** An event's text, and the stream it goes to (nothing for a step that ran). */
export const renderEvent = (
  event: DiscreteEvent,
): { readonly to: "stdout" | "stderr"; readonly text: string } | undefined => {
  switch (event.event) {
    case "step-start":
      return { to: "stdout", text: `Step ${event.step}/${event.total} : ${event.text}\n` }
    case "step-end":
      if (event.cached !== true) return undefined
      return {
        to: "stdout",
        text: event.cacheSource === undefined
          ? " ---> Using cache\n"
          : ` ---> Using cache (from ${event.cacheSource})\n`,
      }
    case "detail":
      // A command with a multi-line argument (an sfdisk script) keeps the arrow on every line.
      return {
        to: "stdout",
        text: event.text.split("\n").map((line) => ` ---> ${line}\n`).join(""),
      }
    case "warning":
      return { to: "stderr", text: `warning: ${event.message}\n` }
    case "info":
      return { to: "stdout", text: `${event.message}\n` }
    case "result":
      return {
        to: "stdout",
        text: isPullResult(event)
          ? `${pulledLine(event)}\n`
          : `Successfully built ${event.name}\n${event.path}\n${buildSummary(event)}`,
      }
    case "error":
      return { to: "stderr", text: `error: ${event.message}\n` }
  }
}

/** Text to `sink`, where a bar may occupy the last stderr line: anything else clears it first. */
const consoleWriter = (sink: ConsoleSink) => {
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
  return {
    clearBar,
    out,
    err,
    /** One JSON object per line, on stdout. */
    line: (event: ReportEvent) => out(`${JSON.stringify(encodeReportEvent(event))}\n`),
    /** Draw `bar` over the last stderr line. */
    drawBar: (bar: string) => {
      sink.stderr(encoder.encode(`\r${bar}\x1b[K`))
      barShown = true
    },
    barShown: () => barShown,
  }
}

type ConsoleWriter = ReturnType<typeof consoleWriter>

/** How progress shows: JSON events, a bar on a terminal, or else periodic lines. */
interface ProgressStyle {
  readonly json: boolean
  readonly bar: boolean
}

/** A progress of `label` (`total` bytes, when known), shown through `writer` in `style`. */
const startProgress = (
  sink: ConsoleSink,
  writer: ConsoleWriter,
  style: ProgressStyle,
  label: string,
  total: number | undefined,
  phase: ProgressPhase | undefined,
): Progress => {
  const { json, bar } = style
  const { line, err } = writer
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
  const progressEvent = (end?: { readonly durationMs: number }): ReportEvent => ({
    event: "progress",
    label,
    bytes,
    total: total ?? null,
    ...(end === undefined ? {} : { done: true, durationMs: Math.round(end.durationMs) }),
    ...(phase === undefined ? {} : { phase }),
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
  const advanced = () => {
    if (json) {
      if (due(JSON_INTERVAL_MS, 0)) line(progressEvent())
    } else if (bar) {
      if (sink.now() - lastAt >= BAR_INTERVAL_MS || !writer.barShown()) {
        lastAt = sink.now()
        writer.drawBar(renderBar(snapshot(), sink.columns()))
      }
    } else if (due(PLAIN_INTERVAL_MS, PLAIN_MINIMUM_MS)) {
      err(`${renderLine(snapshot())}\n`)
    }
  }
  if (json) line(progressEvent())
  else if (!bar) err(`${label}...\n`)
  return {
    advance: (count) =>
      Effect.sync(() => {
        if (finished) return
        bytes += count
        advanced()
      }),
    done: Effect.sync(() => {
      if (finished) return
      finished = true
      const final = snapshot()
      if (json) line(progressEvent({ durationMs: final.elapsedMs }))
      else err(`${renderDone(final)}\n`)
    }),
  }
}

/** Build the reporter's operations over `sink` (the layer below wraps this). */
export const makeReporterConsole = (mode: ProgressMode, sink: ConsoleSink): ReporterShape => {
  const style: ProgressStyle = { json: mode === "json", bar: mode === "auto" && sink.isTerminal }
  const writer = consoleWriter(sink)
  const { out, err, line } = writer
  const report = (event: DiscreteEvent) =>
    Effect.sync(() => {
      if (style.json) return line(event)
      const rendered = renderEvent(event)
      if (rendered !== undefined) (rendered.to === "stdout" ? out : err)(rendered.text)
    })

  return {
    stepStart: (step, total, text) => report({ event: "step-start", step, total, text }),
    stepEnd: (step, total, durationMs, options = {}) =>
      report({ event: "step-end", step, total, durationMs: Math.round(durationMs), ...options }),
    detail: (text) => report({ event: "detail", text }),
    output: (stream, chunk) =>
      Effect.sync(() => {
        if (style.json) line(outputEvent(stream, chunk))
        else {
          // The chunk's own bytes, whatever their encoding. Both streams go to stdout,
          // interleaved as they came, like `docker build`.
          writer.clearBar()
          sink.stdout(chunk)
        }
      }),
    warn: (message) => report({ event: "warning", message }),
    info: (message) => report({ event: "info", message }),
    progress: (label, total, options) =>
      Effect.sync(() => startProgress(sink, writer, style, label, total, options?.phase)),
    result: (summary) => report({ event: "result", ...summary }),
    pulled: (image) => report({ event: "result", ...image }),
    failure: (message, tag) =>
      report({ event: "error", message, ...(tag === undefined ? {} : { _tag: tag }) }),
  }
}

/** The Reporter on this process's stdout/stderr (or on `sink`). */
export const ReporterConsole = (
  mode: ProgressMode,
  sink: ConsoleSink = denoSink(),
): Layer.Layer<Reporter> => Layer.sync(Reporter, () => makeReporterConsole(mode, sink))
