/**
 * VmRunner in memory: each run is recorded, and ends as the test says (a console line that
 * matches `until`, or a power-off), or fails as the test says.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import { RunFailed } from "../../domain/errors/vm.ts"
import type { RunOutcome } from "../../domain/vm_run.ts"
import { type RunOptions, VmRunner } from "../../services/vm_runner.ts"

export interface MemoryVm {
  /** What the simulated console prints, line by line. */
  readonly console: ReadonlyArray<string>
  /** Why QEMU would not start, if it would not. */
  readonly refuse?: string
}

/** Runs against `vm`, recorded in `runs`. */
export const VmRunnerMemory = (vm: MemoryVm, runs: Ref.Ref<ReadonlyArray<RunOptions>>) =>
  Layer.succeed(
    VmRunner,
    VmRunner.of({
      run: (options) =>
        Effect.gen(function* () {
          yield* Ref.update(runs, (all) => [...all, options])
          if (vm.refuse !== undefined) return yield* new RunFailed({ reason: vm.refuse })
          if (options.until === undefined) return { _tag: "PoweredOff" } as RunOutcome
          const text = vm.console.join("\n")
          const match = options.until.exec(text)
          if (match !== null) return { _tag: "Matched", line: match[0] } as RunOutcome
          return yield* new RunFailed({
            reason: `the VM stopped (powered off) before a console line matched ${options.until}`,
            log: vm.console.slice(-20),
          })
        }),
    }),
  )
