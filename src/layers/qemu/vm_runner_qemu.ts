/**
 * VmRunner over QEMU: `transient run` boots on a throw-away overlay (src/layers/qemu/run_vm.ts).
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { DiskImages } from "../../services/disk_images.ts"
import type { Terminal } from "../../services/terminal.ts"
import { VmRunner } from "../../services/vm_runner.ts"
import { runImage } from "./run_vm.ts"

export const VmRunnerQemu: Layer.Layer<
  VmRunner,
  never,
  DiskImages | Terminal | FileSystem.FileSystem | Path.Path | CommandExecutor.CommandExecutor
> = Layer.effect(
  VmRunner,
  Effect.map(
    Effect.context<
      DiskImages | Terminal | FileSystem.FileSystem | Path.Path | CommandExecutor.CommandExecutor
    >(),
    (context) =>
      VmRunner.of({
        run: Effect.fn("VmRunner.run")((options) =>
          runImage(options).pipe(Effect.provide(context))
        ),
      }),
  ),
)
