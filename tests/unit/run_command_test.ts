/** `transient run`: its QEMU command line, and its usage errors, without booting anything. */
import assert from "node:assert/strict"
import { runArgv } from "../../src/layers/qemu/run_vm.ts"
import { transient } from "../run_transient.ts"

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
