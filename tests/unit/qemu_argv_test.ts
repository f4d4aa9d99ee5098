/** The helper VM's QEMU command line: the firmware it is given, the network card's option ROM. */
import assert from "node:assert/strict"
import { FAST_FIRMWARE } from "../../src/layers/qemu/firmware.ts"
import { qemuArgv } from "../../src/layers/qemu/qemu_machine.ts"

Deno.test("qemuArgv passes the firmware and keeps option ROMs off the network card", () => {
  const machine = {
    engine: "tcg" as const,
    cpus: 1,
    memoryMiB: 512,
    images: { kernel: "/k", initrd: "/i" },
    disk: "/d.qcow2",
    context: "/ctx",
    network: true,
    agentSocket: "/a",
    shellSocket: "/s",
    qmpSocket: "/q",
    migrationSocket: "/tmp/migration.sock",
    consoleLog: "/c",
  }
  const withFirmware = qemuArgv({ ...machine, firmware: FAST_FIRMWARE })
  assert.equal(withFirmware[withFirmware.indexOf("-bios") + 1], FAST_FIRMWARE)
  assert.equal(qemuArgv(machine).includes("-bios"), false)
  assert.ok(qemuArgv(machine).includes("virtio-net-pci,netdev=net0,romfile="))
})
