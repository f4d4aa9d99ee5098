/** `transient run`: its QEMU command line. */
import assert from "node:assert/strict"
import { runArgv } from "../../src/layers/qemu/run_vm.ts"

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
  const offline = runArgv({
    engine: "tcg",
    cpus: 1,
    memoryMiB: 512,
    overlay: "/o.qcow2",
    consoleSocket: "/c",
    qmpSocket: "/q",
    network: false,
    forwards: [],
  })
  assert.ok(!offline.includes("-netdev"))
})
