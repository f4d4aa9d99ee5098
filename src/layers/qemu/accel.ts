/**
 * Which accelerator runs the helper VM: KVM when the host offers it, else TCG (emulation).
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import type { Accel } from "../../services/build_vm.ts"

/** Whether this process may open /dev/kvm for reading and writing. */
export const kvmUsable: Effect.Effect<boolean, never, FileSystem.FileSystem> = Effect.flatMap(
  FileSystem.FileSystem,
  (fs) => Effect.scoped(fs.open("/dev/kvm", { flag: "r+" })),
).pipe(Effect.as(true), Effect.orElseSucceed(() => false))

export type Engine = "kvm" | "tcg"

/**
 * vCPUs when none are asked for. Under TCG each vCPU is a host thread emulating a CPU: on a small
 * host, a second one costs more than it gives (boot 6.3 s with 1 against 9.2 s with 2, measured by
 * `deno task bench` on a 2-core machine).
 */
export const defaultCpus = (engine: Engine): number => (engine === "kvm" ? 2 : 1)

/**
 * The engines to try, in order: `auto` is KVM then TCG when KVM is usable (a guest that does not
 * come up under KVM is retried on TCG), else TCG alone.
 */
export const enginesFor = (requested: Accel, kvm: boolean): ReadonlyArray<Engine> =>
  requested === "kvm" ? ["kvm"] : requested === "tcg" ? ["tcg"] : kvm ? ["kvm", "tcg"] : ["tcg"]
