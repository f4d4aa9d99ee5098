/**
 * The helper VM's firmware. QEMU's default for q35, SeaBIOS, spends a few hundred milliseconds
 * under TCG on a power-on self-test and option ROMs that a `-kernel` boot has no use for; qboot,
 * a minimal firmware shipped with QEMU, sets up PCI and ACPI and jumps to the kernel.
 */
import * as Effect from "effect/Effect"
import { runTool } from "./qemu_process.ts"

export const FAST_FIRMWARE = "qboot.rom"

/**
 * `FAST_FIRMWARE` when this QEMU has it in one of its data directories (`-L help` lists them),
 * else `undefined`: QEMU's default firmware. Never fails; a missing QEMU is reported at boot.
 */
export const fastFirmware = (qemu: string): Effect.Effect<string | undefined> =>
  runTool([qemu, "-L", "help"]).pipe(
    Effect.flatMap((result) =>
      Effect.promise(async () => {
        if (result.code !== 0) return undefined
        const dirs = result.stdout.split("\n").map((line) => line.trim()).filter(Boolean)
        for (const dir of dirs) {
          const info = await Deno.stat(`${dir}/${FAST_FIRMWARE}`).catch(() => undefined)
          if (info?.isFile) return FAST_FIRMWARE
        }
        return undefined
      })
    ),
    Effect.orElseSucceed(() => undefined),
  )
