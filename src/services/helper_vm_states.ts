/**
 * HelperVmStates: the helper VM's saved states beside the step cache (what builds restore
 * instead of booting), as far as housekeeping sees them.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

export interface RemovedStates {
  readonly count: number
  readonly bytes: number
}

export interface HelperVmStatesShape {
  /** Remove every saved state; how many went, and the bytes freed. Never fails. */
  readonly removeAll: Effect.Effect<RemovedStates>
}

export class HelperVmStates extends Context.Tag("transient/HelperVmStates")<
  HelperVmStates,
  HelperVmStatesShape
>() {}
