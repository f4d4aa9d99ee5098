/**
 * Where `transient run` finds OVMF (src/layers/qemu/uefi_firmware.ts), against temporary
 * directories standing for /usr/share/OVMF as Debian's ovmf package, old and new, fills it.
 */
import assert from "node:assert/strict"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { locateOvmf } from "../../src/layers/qemu/uefi_firmware.ts"
import { runFailure, runTest } from "../support/effect.ts"

/** A directory holding empty files named `names`, for the body; removed after it. */
const withOvmf = async (names: ReadonlyArray<string>, body: (dir: string) => Promise<void>) => {
  const dir = await Deno.makeTempDir()
  try {
    for (const name of names) await Deno.writeFile(`${dir}/${name}`, new Uint8Array())
    await body(dir)
  } finally {
    await Deno.remove(dir, { recursive: true })
  }
}

const locate = (dir: string, secureBoot: boolean) =>
  locateOvmf(dir, { secureBoot }).pipe(Effect.provide(NodeContext.layer))

/** Every file of bookworm's ovmf package. */
const BOOKWORM = [
  "OVMF_CODE.fd",
  "OVMF_CODE.secboot.fd",
  "OVMF_CODE_4M.fd",
  "OVMF_CODE_4M.secboot.fd",
  "OVMF_VARS.fd",
  "OVMF_VARS.ms.fd",
  "OVMF_VARS_4M.fd",
  "OVMF_VARS_4M.ms.fd",
  "OVMF_VARS_4M.snakeoil.fd",
]

Deno.test("OVMF: the 4 MiB build and its variable store; with Secure Boot, Microsoft's keys", () =>
  withOvmf(BOOKWORM, async (dir) => {
    assert.deepEqual(await runTest(locate(dir, false)), {
      code: `${dir}/OVMF_CODE_4M.fd`,
      vars: `${dir}/OVMF_VARS_4M.fd`,
    })
    assert.deepEqual(await runTest(locate(dir, true)), {
      code: `${dir}/OVMF_CODE_4M.secboot.fd`,
      vars: `${dir}/OVMF_VARS_4M.ms.fd`,
    })
  }))

Deno.test("OVMF: the 2 MiB names when the 4 MiB build is not there, never a mixed pair", () =>
  withOvmf(
    ["OVMF_CODE.fd", "OVMF_VARS.fd", "OVMF_CODE_4M.fd", "OVMF_CODE.secboot.fd", "OVMF_VARS.ms.fd"],
    async (dir) => {
      assert.deepEqual(await runTest(locate(dir, false)), {
        code: `${dir}/OVMF_CODE.fd`,
        vars: `${dir}/OVMF_VARS.fd`,
      })
      assert.deepEqual(await runTest(locate(dir, true)), {
        code: `${dir}/OVMF_CODE.secboot.fd`,
        vars: `${dir}/OVMF_VARS.ms.fd`,
      })
    },
  ))

Deno.test("OVMF missing: one sentence naming the package and where it looked", () =>
  withOvmf(["OVMF_CODE_4M.fd"], async (dir) => {
    const plain = Option.getOrThrow(Cause.failureOption(await runFailure(locate(dir, false))))
    assert.equal(plain._tag, "UefiFirmwareMissing")
    assert.equal(
      plain.message,
      `UEFI firmware (OVMF) is not installed: install Debian's ovmf package (looked in ${dir})`,
    )
    const secure = Option.getOrThrow(Cause.failureOption(await runFailure(locate(dir, true))))
    assert.match(secure.message, /^UEFI firmware with Secure Boot \(OVMF\) is not installed: /)
  }))
