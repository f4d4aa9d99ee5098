/**
 * HelperVmStates in the cache directory's `helper-vm/`, where build_vm_qemu saves them.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { HelperVmStates } from "../../services/helper_vm_states.ts"
import { removeStates, statesIn } from "./vm_state.ts"

export const HelperVmStatesDirectory = (
  cacheDirectory: string,
): Layer.Layer<HelperVmStates, never, FileSystem.FileSystem> =>
  Layer.effect(
    HelperVmStates,
    Effect.map(Effect.context<FileSystem.FileSystem>(), (context) =>
      HelperVmStates.of({
        removeAll: removeStates(statesIn(cacheDirectory)).pipe(
          Effect.provide(context),
          Effect.withSpan("HelperVmStates.removeAll"),
        ),
      })),
  )
