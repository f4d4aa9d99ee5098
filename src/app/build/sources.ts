/**
 * The build context's side of a build: every COPY/ADD source resolved and digested before
 * anything is created or booted, so a missing or escaping source fails first.
 */
import * as Effect from "effect/Effect"
import { ContextSourceError } from "../../domain/errors/build.ts"
import type { BuildPlan } from "../../domain/plan.ts"
import { BuildContext, type ContextEntry } from "../../services/build_context.ts"

export interface ResolvedSources {
  /** A source the plan names, as the context resolved it. */
  readonly entry: (source: string) => ContextEntry
  /** Each source's content digest, for the step cache's keys. */
  readonly digests: ReadonlyMap<string, string>
}

export const resolveSources = Effect.fn("build.sources")(function* (plan: BuildPlan) {
  const context = yield* BuildContext
  const entries = new Map<string, ContextEntry>()
  const digests = new Map<string, string>()
  for (const source of plan.sources) {
    const location = plan.sourceLocations.get(source)
    const located = <A>(effect: Effect.Effect<A, ContextSourceError>) =>
      effect.pipe(
        Effect.mapError((error) =>
          location === undefined ? error : new ContextSourceError({ ...error, location })
        ),
      )
    const resolved = yield* located(context.resolve(source))
    entries.set(source, resolved)
    digests.set(source, yield* located(context.digest(resolved)))
  }
  return { entry: (source) => entries.get(source)!, digests } satisfies ResolvedSources
})
