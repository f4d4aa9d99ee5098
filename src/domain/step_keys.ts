/**
 * Step-cache keys: which steps of a plan make one cached layer, and the key of each layer. Pure.
 *
 * As BuildKit does, a layer's key is a digest of its parent's key and of what the layer's steps
 * do: their actions as data (so spacing and keyword case do not matter), and for COPY and ADD
 * the digest of the sources' content. The root key also covers what every result depends on:
 * the helper VM's artifacts (another mkfs could write another filesystem) and, for `FROM
 * <image>`, the identity of the base image's content. Machine options (`--cpus`, `--memory`,
 * `--accel`, `--no-network`) are not part of any key.
 */
import { createHash } from "node:crypto"
import type { BuildPlan, PlanStep } from "./plan.ts"

/** Bumped whenever the layout or the meaning of a layer changes, so old layers never match. */
const LAYER_FORMAT = "transient-layer-1"

/** What the keys depend on beyond the plan itself. */
export interface KeyInputs {
  /** The helper VM's artifacts (their manifest's `inputs` digest). */
  readonly artifacts: string
  /** The base image's content identity, for `FROM <image>`. */
  readonly base?: string
  /** Each COPY/ADD source (as written) to the digest of its content. */
  readonly sources: ReadonlyMap<string, string>
}

/** The steps that make one layer, and its key. */
export interface LayerSpec {
  readonly key: string
  /** The plan's steps in this layer, in order (1-based indexes, as in `Step i/N`). */
  readonly steps: ReadonlyArray<PlanStep>
  /** How the layer reads in `cache ls`: its steps' text. */
  readonly text: string
}

export interface CachePlan {
  /** The cacheable layers, in order: the first is the prelude (FROM, DISK, PARTITIONs). */
  readonly layers: ReadonlyArray<LayerSpec>
  /** The steps that run every time, after the layers: INSPECT and whatever follows it. */
  readonly uncached: ReadonlyArray<PlanStep>
}

const digest = (parts: ReadonlyArray<unknown>): string =>
  createHash("sha256").update(JSON.stringify(parts)).digest("hex")

const sourcesOf = (step: PlanStep): ReadonlyArray<string> =>
  step.actions.flatMap((action) =>
    action._tag === "Copy" || action._tag === "Add" ? action.sources : []
  )

/**
 * The plan's layers and their keys. INSPECT (interactive, it may change anything) ends caching:
 * it and the steps after it are `uncached`.
 */
export const cachePlan = (plan: BuildPlan, inputs: KeyInputs): CachePlan => {
  const inspect = plan.steps.findIndex((step) =>
    step.actions.some((action) => action._tag === "Inspect")
  )
  const cacheable = inspect === -1 ? plan.steps : plan.steps.slice(0, inspect)
  const uncached = inspect === -1 ? [] : plan.steps.slice(inspect)
  const prelude = plan.preludeSteps
  if (cacheable.length < prelude) return { layers: [], uncached: plan.steps }

  const canonical = (step: PlanStep) => ({
    actions: step.actions,
    sources: sourcesOf(step).map((source) => inputs.sources.get(source) ?? "missing"),
  })
  const groups = [
    cacheable.slice(0, prelude),
    ...cacheable.slice(prelude).map((step) => [step]),
  ]
  const layers: Array<LayerSpec> = []
  let parent = digest([LAYER_FORMAT, inputs.artifacts, inputs.base ?? "scratch"])
  for (const steps of groups) {
    const key = digest([parent, steps.map(canonical)])
    layers.push({ key, steps, text: steps.map((step) => step.text).join(" && ") })
    parent = key
  }
  return { layers, uncached }
}
