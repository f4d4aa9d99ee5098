/**
 * Reporter: what a build tells its user — step lines, the steps' live output, warnings, download
 * progress and the final summary — as text on a terminal or as JSON events for CI.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

export type OutputStream = "stdout" | "stderr"

export interface StepSummary {
  readonly index: number
  readonly text: string
  readonly durationMs: number
}

export interface BuildSummary {
  readonly name: string
  readonly path: string
  readonly virtualSize: number
  readonly actualSize: number
  readonly durationMs: number
  readonly steps: ReadonlyArray<StepSummary>
}

/** A long transfer (a download, a conversion). `total` is unknown for some servers. */
export interface Progress {
  readonly advance: (bytes: number) => Effect.Effect<void>
  readonly done: Effect.Effect<void>
}

export interface ReporterShape {
  /** `Step i/N : TEXT` */
  readonly stepStart: (index: number, total: number, text: string) => Effect.Effect<void>
  readonly stepEnd: (index: number, total: number, durationMs: number) => Effect.Effect<void>
  /** What the helper VM does for a step (shown by `--dry-run`, logged with `--verbose`). */
  readonly detail: (line: string) => Effect.Effect<void>
  /** A chunk of a step's own output, streamed as it comes. */
  readonly output: (stream: OutputStream, chunk: Uint8Array) => Effect.Effect<void>
  readonly warn: (message: string) => Effect.Effect<void>
  readonly info: (message: string) => Effect.Effect<void>
  readonly progress: (label: string, total: number | undefined) => Effect.Effect<Progress>
  readonly result: (summary: BuildSummary) => Effect.Effect<void>
  readonly failure: (message: string) => Effect.Effect<void>
}

export class Reporter extends Context.Tag("transient/Reporter")<Reporter, ReporterShape>() {}
