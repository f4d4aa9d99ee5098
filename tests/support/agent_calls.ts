/** What calls to an AgentClient gave: the output an exec wrote, the VmError a call failed with. */
import assert from "node:assert/strict"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import { isVmError, type VmError } from "../../src/domain/errors/vm.ts"
import type { OutputStream } from "../../src/services/reporter.ts"
import { concatBytes as concat } from "../../src/domain/bytes.ts"

/** An exec's output handler that keeps each stream's chunks, to read back whole. */
export const collector = () => {
  const chunks: Record<OutputStream, Array<Uint8Array>> = { stdout: [], stderr: [] }
  return {
    onOutput: (stream: OutputStream, chunk: Uint8Array) =>
      Effect.sync(() => void chunks[stream].push(chunk)),
    bytes: (stream: OutputStream) => concat(chunks[stream]),
    text: (stream: OutputStream) => new TextDecoder().decode(concat(chunks[stream])),
  }
}

/** The VmError an effect failed with (a defect or interruption fails the test). */
export const vmErrorOf = <A>(effect: Effect.Effect<A, VmError, Scope.Scope>) =>
  Effect.gen(function* () {
    const exit = yield* Effect.exit(Effect.scoped(effect))
    if (Exit.isSuccess(exit)) throw new Error(`expected a VmError, got ${String(exit.value)}`)
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "None") throw new Error(`expected a VmError:\n${Cause.pretty(exit.cause)}`)
    assert.ok(isVmError(failure.value))
    return failure.value
  })
