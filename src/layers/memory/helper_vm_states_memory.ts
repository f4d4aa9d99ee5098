/**
 * HelperVmStates in memory: a list of saved states' sizes, emptied by removeAll.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import { HelperVmStates } from "../../services/helper_vm_states.ts"

/** States of the given sizes in bytes. */
export const HelperVmStatesMemory = (sizes: ReadonlyArray<number> = []) =>
  Layer.effect(
    HelperVmStates,
    Effect.map(Ref.make<ReadonlyArray<number>>(sizes), (states) =>
      HelperVmStates.of({
        removeAll: Ref.getAndSet(states, []).pipe(
          Effect.map((removed) => ({
            count: removed.length,
            bytes: removed.reduce((sum, bytes) => sum + bytes, 0),
          })),
        ),
      })),
  )
