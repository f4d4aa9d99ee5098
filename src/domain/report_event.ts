/**
 * The report events: everything a build or a pull tells its user, as values. The console
 * reporter prints them as one JSON object per line with `--progress json` (the interface that
 * docs/progress-events.md documents) or renders them as text; the memory reporter records them.
 *
 * Each event is a struct tagged by its `event` field (not `_tag`: the JSON lines predate this
 * module, and the error event carries the error's own `_tag`). Fields are only ever added.
 */
import { encodeBase64 } from "effect/Encoding"
import * as Schema from "effect/Schema"

const Count = Schema.NonNegativeInt
/** Whole milliseconds. */
const Milliseconds = Schema.NonNegativeInt

export const OutputStream = Schema.Literal("stdout", "stderr")
export type OutputStream = typeof OutputStream.Type

/** A step's output chunk as standard base64 (for chunks that are not UTF-8 on their own). */
const Base64 = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9+/]*={0,2}$/))

/** `Step i/N : TEXT` */
export const StepStart = Schema.Struct({
  event: Schema.tag("step-start"),
  step: Count,
  total: Count,
  text: Schema.String,
})

export const StepEnd = Schema.Struct({
  event: Schema.tag("step-end"),
  step: Count,
  total: Count,
  durationMs: Milliseconds,
  /** The step was served from the step cache instead of being run. */
  cached: Schema.optionalWith(Schema.Boolean, { exact: true }),
  /** Where a cached step came from: the `--cache-from` REF; absent for the local cache. */
  cacheSource: Schema.optionalWith(Schema.String, { exact: true }),
})

/** What the helper VM does for a step (`--dry-run`, `--verbose`). */
export const Detail = Schema.Struct({ event: Schema.tag("detail"), text: Schema.String })

export const OutputText = Schema.Struct({
  event: Schema.tag("output"),
  stream: OutputStream,
  text: Schema.String,
})

export const OutputBase64 = Schema.Struct({
  event: Schema.tag("output"),
  stream: OutputStream,
  base64: Base64,
})

export const Warning = Schema.Struct({ event: Schema.tag("warning"), message: Schema.String })

export const Info = Schema.Struct({ event: Schema.tag("info"), message: Schema.String })

export const ProgressPhase = Schema.Literal(
  "download",
  "decompress",
  "convert",
  "verify",
  "compress",
  "upload",
  "unpack",
)
export type ProgressPhase = typeof ProgressPhase.Type

/** A long transfer: a first event at 0 bytes, paced updates, and a last one with `done`. */
export const Progress = Schema.Struct({
  event: Schema.tag("progress"),
  label: Schema.String,
  bytes: Count,
  /** Unknown for some servers. */
  total: Schema.NullOr(Count),
  done: Schema.optionalWith(Schema.Literal(true), { exact: true }),
  durationMs: Schema.optionalWith(Milliseconds, { exact: true }),
  phase: Schema.optionalWith(ProgressPhase, { exact: true }),
})

export const StepSummary = Schema.Struct({
  index: Count,
  text: Schema.String,
  durationMs: Milliseconds,
})
export type StepSummary = typeof StepSummary.Type

const buildSummaryFields = {
  name: Schema.String,
  path: Schema.String,
  virtualSize: Count,
  actualSize: Count,
  durationMs: Milliseconds,
  steps: Schema.Array(StepSummary),
}

/** What `Successfully built NAME` says: the image, its sizes, and the time each step took. */
export const BuildSummary = Schema.Struct(buildSummaryFields)
export type BuildSummary = typeof BuildSummary.Type

export const BuildResult = Schema.Struct({ event: Schema.tag("result"), ...buildSummaryFields })

const pulledImageFields = {
  /** The image was in the store already: nothing was fetched. */
  present: Schema.Boolean,
  name: Schema.String,
  path: Schema.String,
  format: Schema.String,
  virtualSize: Count,
  actualSize: Count,
}

/** What `image pull` ends with. */
export const PulledImage = Schema.Struct(pulledImageFields)
export type PulledImage = typeof PulledImage.Type

export const PullResult = Schema.Struct({ event: Schema.tag("result"), ...pulledImageFields })

export const ErrorEvent = Schema.Struct({
  event: Schema.tag("error"),
  message: Schema.String,
  /** The error's `_tag` (`StepFailed`, `StoreError`...), for consumers that branch on it. */
  _tag: Schema.optionalWith(Schema.String, { exact: true }),
})

export const ReportEvent = Schema.Union(
  StepStart,
  StepEnd,
  Detail,
  OutputText,
  OutputBase64,
  Warning,
  Info,
  Progress,
  BuildResult,
  PullResult,
  ErrorEvent,
).annotations({ identifier: "ReportEvent" })
export type ReportEvent = typeof ReportEvent.Type

/** A JSON line's object (one event per line, for `--progress json`). */
export const encodeReportEvent: (event: ReportEvent) => typeof ReportEvent.Encoded = Schema
  .encodeSync(ReportEvent)

export const decodeReportEvent: (input: unknown) => ReportEvent = Schema.decodeUnknownSync(
  ReportEvent,
)

export const isPullResult = (event: ReportEvent): event is typeof PullResult.Type =>
  event.event === "result" && "present" in event

// BOMs are kept: the text must be the chunk's exact bytes.
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** A chunk of output as an event: its text when it is UTF-8 on its own, else its base64. */
export const outputEvent = (
  stream: OutputStream,
  chunk: Uint8Array,
): typeof OutputText.Type | typeof OutputBase64.Type => {
  try {
    return { event: "output", stream, text: strictDecoder.decode(chunk) }
  } catch {
    return { event: "output", stream, base64: encodeBase64(chunk) }
  }
}
