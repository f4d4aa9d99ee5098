/**
 * The choice of the helper VM's firmware (src/layers/qemu/firmware.ts), against stand-in
 * emulators that list data directories as `qemu-system-x86_64 -L help` does, run as processes.
 */
import assert from "node:assert/strict"
import { FAST_FIRMWARE, fastFirmware } from "../../src/layers/qemu/firmware.ts"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import { runTest } from "../support/effect.ts"

/** An executable that prints `dirs`, one a line, and exits with `code`. */
const standIn = async (dir: string, dirs: ReadonlyArray<string>, code = 0) => {
  const path = `${dir}/qemu-stand-in`
  const lines = dirs.map((d) => `echo '${d}'`).join("\n")
  await Deno.writeTextFile(path, `#!/bin/sh\n${lines}\nexit ${code}\n`)
  await Deno.chmod(path, 0o755)
  return path
}

/** The firmware fastFirmware picks for the emulator `qemu`. */
const firmwareOf = (qemu: string) =>
  runTest(fastFirmware(qemu).pipe(Effect.provide(NodeContext.layer)))

const withDir = async (body: (dir: string) => Promise<void>) => {
  const dir = await Deno.makeTempDir()
  try {
    await body(dir)
  } finally {
    await Deno.remove(dir, { recursive: true })
  }
}

Deno.test("fastFirmware picks qboot when one of QEMU's data directories has it", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/empty`)
    await Deno.mkdir(`${dir}/share`)
    await Deno.writeTextFile(`${dir}/share/${FAST_FIRMWARE}`, "rom")
    const qemu = await standIn(dir, [`${dir}/empty`, `${dir}/share`])
    assert.equal(await firmwareOf(qemu), FAST_FIRMWARE)
  })
})

Deno.test("fastFirmware leaves QEMU's default when qboot is absent or QEMU cannot say", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/empty`)
    // A directory of that name is not the firmware.
    await Deno.mkdir(`${dir}/empty/${FAST_FIRMWARE}`)
    assert.equal(await firmwareOf(await standIn(dir, [`${dir}/empty`])), undefined)
    await Deno.writeTextFile(`${dir}/${FAST_FIRMWARE}`, "rom")
    assert.equal(await firmwareOf(await standIn(dir, [dir], 1)), undefined)
    assert.equal(await firmwareOf(`${dir}/no-such-qemu`), undefined)
  })
})
