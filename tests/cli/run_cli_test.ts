/** `transient run`: its usage errors, without booting anything. */
import assert from "node:assert/strict"
import { transient } from "../support/run_transient.ts"

Deno.test("run: bad --forward and --until are usage errors; a raw file is refused", async () => {
  const store = await Deno.makeTempDir()
  const env = { TRANSIENT_IMAGE_BACKEND: store }
  const [forward, until, raw] = await Promise.all([
    transient(["run", "x", "--forward", "80"], { env }),
    transient(["run", "x", "--until", "("], { env }),
    transient(["run", "/etc/hostname"], { env }),
  ])
  assert.equal(forward.code, 2)
  assert.equal(forward.stderr, "error: --forward takes HOST:GUEST, two TCP ports (got '80')\n")
  assert.equal(until.code, 2)
  assert.match(until.stderr, /^error: --until is not a regular expression/)
  assert.equal(raw.code, 1)
  assert.equal(raw.stderr, "error: transient run: /etc/hostname is raw, not qcow2\n")
  await Deno.remove(store, { recursive: true })
})

Deno.test("run: --secure-boot with --firmware bios, and an unknown firmware, are usage errors", async () => {
  const store = await Deno.makeTempDir()
  const env = { TRANSIENT_IMAGE_BACKEND: store }
  const [secureBios, unknown] = await Promise.all([
    transient(["run", "/etc/hostname", "--firmware", "bios", "--secure-boot"], { env }),
    transient(["run", "/etc/hostname", "--firmware", "coreboot"], { env }),
  ])
  assert.equal(secureBios.code, 2)
  assert.equal(secureBios.stderr, "error: --secure-boot needs UEFI firmware, not --firmware bios\n")
  assert.equal(unknown.code, 2)
  assert.match(unknown.stderr, /coreboot/)
  await Deno.remove(store, { recursive: true })
})
