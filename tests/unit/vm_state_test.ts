/**
 * The key of a saved helper-VM state: another QEMU, another artifact build or another machine
 * must never restore a state made for the first.
 */
import assert from "node:assert/strict"
import { stateKey } from "../../src/layers/qemu/vm_state.ts"

const machine = {
  engine: "tcg",
  cpus: 1,
  memoryMiB: 1024,
  network: false,
  images: { kernel: "/k", initrd: "/i", runtime: "/r", inputs: "sha256:aaaa" },
} as const
const qemu = "QEMU emulator version 7.2.22\n/usr/bin/qemu-system-x86_64 123 456"

Deno.test("a state's key changes with QEMU, the artifacts and every machine setting", () => {
  const key = stateKey(qemu, machine)
  assert.match(key ?? "", /^[0-9a-f]{64}$/)
  // The same inputs give the same key, whatever the paths the artifacts were found at.
  assert.equal(
    stateKey(qemu, { ...machine, images: { ...machine.images, kernel: "/elsewhere/k" } }),
    key,
  )
  const others = [
    stateKey("QEMU emulator version 8.2.0\n/usr/bin/qemu-system-x86_64 123 456", machine),
    stateKey("QEMU emulator version 7.2.22\n/usr/bin/qemu-system-x86_64 123 789", machine),
    stateKey(qemu, { ...machine, images: { ...machine.images, inputs: "sha256:bbbb" } }),
    stateKey(qemu, { ...machine, engine: "kvm" }),
    stateKey(qemu, { ...machine, cpus: 2 }),
    stateKey(qemu, { ...machine, memoryMiB: 2048 }),
    stateKey(qemu, { ...machine, network: true }),
    stateKey(qemu, { ...machine, firmware: "qboot.rom" }),
  ]
  assert.equal(new Set([key, ...others]).size, others.length + 1)
})

Deno.test("artifacts of unknown inputs never get a saved state", () => {
  const { inputs: _, ...unversioned } = machine.images
  assert.equal(stateKey(qemu, { ...machine, images: unversioned }), undefined)
})
