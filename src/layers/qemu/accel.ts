/**
 * Which accelerator runs the helper VM: KVM when the host offers it, else TCG (emulation).
 */
import * as Effect from "effect/Effect"
import type { Accel } from "../../services/build_vm.ts"

/** Whether this process may open /dev/kvm for reading and writing. */
export const kvmUsable: Effect.Effect<boolean> = Effect.sync(() => {
  try {
    Deno.openSync("/dev/kvm", { read: true, write: true }).close()
    return true
  } catch {
    return false
  }
})

export type Engine = "kvm" | "tcg"

/**
 * The engines to try, in order: `auto` is KVM then TCG when KVM is usable (a guest that does not
 * come up under KVM is retried on TCG), else TCG alone.
 */
export const enginesFor = (requested: Accel, kvm: boolean): ReadonlyArray<Engine> =>
  requested === "kvm" ? ["kvm"] : requested === "tcg" ? ["tcg"] : kvm ? ["kvm", "tcg"] : ["tcg"]
