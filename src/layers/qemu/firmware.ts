/**
 * The helper VM's firmware. QEMU's default for q35, SeaBIOS, spends a few hundred milliseconds
 * under TCG on a power-on self-test and option ROMs that a `-kernel` boot has no use for; qboot,
 * a minimal firmware shipped with QEMU, sets up PCI and ACPI and jumps to the kernel.
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import { runTool } from "../host_process.ts"

export const FAST_FIRMWARE = "qboot.rom"

/**
 * `FAST_FIRMWARE` when this QEMU has it in one of its data directories (`-L help` lists them),
 * else `undefined`: QEMU's default firmware. Never fails; a missing QEMU is reported at boot.
 */
export const fastFirmware = (
  qemu: string,
): Effect.Effect<
  string | undefined,
  never,
  CommandExecutor.CommandExecutor | FileSystem.FileSystem | Path.Path
> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const result = yield* runTool([qemu, "-L", "help"])
    if (result.code !== 0) return undefined
    const dirs = result.stdout.split("\n").map((line) => line.trim()).filter(Boolean)
    for (const dir of dirs) {
      const info = yield* fs.stat(path.join(dir, FAST_FIRMWARE)).pipe(Effect.option)
      if (info._tag === "Some" && info.value.type === "File") return FAST_FIRMWARE
    }
    return undefined
  }).pipe(Effect.orElseSucceed(() => undefined))
