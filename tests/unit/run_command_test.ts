/** `transient run`: its QEMU command line. */
import assert from "node:assert/strict"
import { parseVncDisplay } from "../../src/domain/vm_run.ts"
import { runArgv } from "../../src/layers/qemu/run_vm.ts"

/** A VM without network, on TCG. */
const offlineMachine = {
  engine: "tcg" as const,
  cpus: 1,
  memoryMiB: 512,
  overlay: "/o.qcow2",
  consoleSocket: "/c",
  qmpSocket: "/q",
  network: false,
  forwards: [],
}

Deno.test("run boots the overlay, never the image, and forwards ports on 127.0.0.1 only", () => {
  const argv = runArgv({
    engine: "tcg",
    cpus: 1,
    memoryMiB: 512,
    overlay: "/tmp/x,y/overlay.qcow2",
    consoleSocket: "/tmp/c.sock",
    qmpSocket: "/tmp/q.sock",
    network: true,
    forwards: [{ host: 8080, guest: 80 }, { host: 2222, guest: 22 }],
  })
  assert.ok(
    argv.includes("file=/tmp/x,,y/overlay.qcow2,format=qcow2,if=none,id=target,cache=unsafe"),
  )
  // On virtio-scsi: the image's disk is /dev/sda, as during its build.
  assert.ok(argv.includes("scsi-hd,bus=scsi0.0,channel=0,scsi-id=0,lun=0,drive=target"))
  assert.ok(
    argv.includes("user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:2222-:22"),
  )
  assert.ok(!runArgv(offlineMachine).includes("-netdev"))
})

Deno.test("run gives the VM a screen, shown over VNC only when asked", () => {
  const machine = offlineMachine
  const headless = runArgv(machine)
  assert.equal(
    headless[headless.indexOf("-device", headless.indexOf("chardev:console")) + 1],
    "VGA",
  )
  assert.ok(!headless.includes("-vnc"))
  const shown = runArgv({ ...machine, vnc: "127.0.0.1:5" })
  assert.equal(shown[shown.indexOf("-vnc") + 1], "127.0.0.1:5")
})

Deno.test("--vnc takes a display number, with an address or on 127.0.0.1", () => {
  assert.equal(parseVncDisplay("5"), "127.0.0.1:5")
  assert.equal(parseVncDisplay("0.0.0.0:12"), "0.0.0.0:12")
  assert.equal(parseVncDisplay("localhost:1"), "localhost:1")
  for (const bad of ["5900", "host:1", "1:2:3", "", ":x", "127.0.0.1:1,password=on"]) {
    assert.deepEqual(parseVncDisplay(bad), {
      problem: `--vnc takes N or ADDRESS:N, a display number (got '${bad}')`,
    })
  }
})

/** The values of each `flag` in `argv`, in order. */
const valuesOf = (argv: ReadonlyArray<string>, flag: string) =>
  argv.flatMap((arg, index) => arg === flag ? [argv[index + 1] ?? ""] : [])

Deno.test("run with BIOS firmware leaves QEMU its default (SeaBIOS): no flash, no SMM", () => {
  const argv = runArgv(offlineMachine)
  assert.ok(!argv.some((arg) => arg.includes("pflash")))
  assert.deepEqual(valuesOf(argv, "-machine"), ["q35,accel=tcg"])
  assert.ok(!argv.includes("-bios"))
})

Deno.test("run with UEFI boots OVMF's code read-only, and the run's copy of its variables", () => {
  const argv = runArgv({
    ...offlineMachine,
    uefi: {
      code: "/usr/share/OVMF/OVMF_CODE_4M.fd",
      vars: "/tmp/run,1/vars.fd",
      secureBoot: false,
    },
  })
  assert.deepEqual(valuesOf(argv, "-drive").filter((drive) => drive.includes("pflash")), [
    "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
    "if=pflash,format=raw,unit=1,file=/tmp/run,,1/vars.fd",
  ])
  assert.deepEqual(valuesOf(argv, "-machine"), ["q35,accel=tcg"], "no SMM without Secure Boot")
  assert.ok(!argv.includes("-global"))
})

Deno.test("run with Secure Boot turns on SMM and lets only SMM write the flash", () => {
  const argv = runArgv({
    ...offlineMachine,
    uefi: { code: "/ovmf/OVMF_CODE_4M.secboot.fd", vars: "/run/vars.fd", secureBoot: true },
  })
  assert.deepEqual(valuesOf(argv, "-machine"), ["q35,accel=tcg", "smm=on"])
  assert.deepEqual(valuesOf(argv, "-global"), ["driver=cfi.pflash01,property=secure,value=on"])
  assert.ok(
    argv.includes("if=pflash,format=raw,unit=0,readonly=on,file=/ovmf/OVMF_CODE_4M.secboot.fd"),
  )
  assert.ok(argv.includes("if=pflash,format=raw,unit=1,file=/run/vars.fd"))
})
