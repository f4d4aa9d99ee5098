/**
 * Reporter: what a build tells its user — step lines, the steps' live output, warnings, download
 * progress and the final summary — as text on a terminal or as JSON events for CI. The events
 * themselves are src/domain/report_event.ts.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type {
  BuildSummary,
  OutputStream,
  ProgressPhase,
  PulledImage,
} from "../domain/report_event.ts"

export type {
  BuildSummary,
  OutputStream,
  ProgressPhase,
  PulledImage,
  StepSummary,
} from "../domain/report_event.ts"

/** A long transfer (a download, a conversion). `total` is unknown for some servers. */
export interface Progress {
  readonly advance: (bytes: number) => Effect.Effect<void>
  readonly done: Effect.Effect<void>
}

/** How a step ended, beyond its duration. */
export interface StepEndOptions {
  /** Served from the step cache instead of being run. */
  readonly cached?: boolean
  /** Where a cached step came from (the `--cache-from` REF); absent for the local cache. */
  readonly cacheSource?: string
}

export interface ReporterShape {
  /** `Step i/N : TEXT` */
  readonly stepStart: (index: number, total: number, text: string) => Effect.Effect<void>
  /** ` ---> Using cache` when `cached`; nothing else in text mode. */
  readonly stepEnd: (
    index: number,
    total: number,
    durationMs: number,
    options?: StepEndOptions,
  ) => Effect.Effect<void>
  /** What the helper VM does for a step (shown by `--dry-run`, logged with `--verbose`). */
  readonly detail: (line: string) => Effect.Effect<void>
  /** A chunk of a step's own output, streamed as it comes. */
  readonly output: (stream: OutputStream, chunk: Uint8Array) => Effect.Effect<void>
  readonly warn: (message: string) => Effect.Effect<void>
  readonly info: (message: string) => Effect.Effect<void>
  readonly progress: (
    label: string,
    total: number | undefined,
    options?: { readonly phase?: ProgressPhase },
  ) => Effect.Effect<Progress>
  /** The end of a build: `Successfully built NAME`. */
  readonly result: (summary: BuildSummary) => Effect.Effect<void>
  /** The end of `image pull`: the image, and whether it was in the store already. */
  readonly pulled: (image: PulledImage) => Effect.Effect<void>
  /** `tag` is the error's `_tag`, for JSON consumers that branch on it. */
  readonly failure: (message: string, tag?: string) => Effect.Effect<void>
}

/** How progress is shown: a bar on a terminal (auto), plain lines, or JSON events. */
export type ProgressMode = "auto" | "plain" | "json"

export const PROGRESS_MODES: ReadonlyArray<ProgressMode> = ["auto", "plain", "json"]

export class Reporter extends Context.Tag("transient/Reporter")<Reporter, ReporterShape>() {}

/**
 * `work` shown as a progress of `phase` over `total` bytes: `work` reports the fraction done (0
 * to 1), as qemu-img's meter does; the progress ends however the work does.
 */
export const shownAsProgress = <A, E, R>(
  reporter: ReporterShape,
  label: string,
  total: number | undefined,
  phase: ProgressPhase | undefined,
  work: (onProgress: (fraction: number) => Effect.Effect<void>) => Effect.Effect<A, E, R>,
) =>
  Effect.gen(function* () {
    const progress = yield* reporter.progress(label, total, phase === undefined ? {} : { phase })
    let reported = 0
    const onProgress = (fraction: number) => {
      const bytes = Math.round(fraction * (total ?? 0))
      const step = bytes - reported
      reported = Math.max(reported, bytes)
      return step > 0 ? progress.advance(step) : Effect.void
    }
    return yield* Effect.ensuring(work(onProgress), progress.done)
  })
