/**
 * A Reporter that passes on its warnings and nothing else: for tests and benchmarks that drive
 * a layer directly and want no build output.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Reporter, type ReporterShape } from "../../src/services/reporter.ts"

export const warningsReporter = (warn: (message: string) => void): Layer.Layer<Reporter> =>
  Layer.succeed(
    Reporter,
    {
      stepStart: () => Effect.void,
      stepEnd: () => Effect.void,
      detail: () => Effect.void,
      output: () => Effect.void,
      warn: (message) => Effect.sync(() => warn(message)),
      info: () => Effect.void,
      progress: () => Effect.succeed({ advance: () => Effect.void, done: Effect.void }),
      result: () => Effect.void,
      pulled: () => Effect.void,
      failure: () => Effect.void,
    } satisfies ReporterShape,
  )
