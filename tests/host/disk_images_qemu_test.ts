/**
 * DiskImagesQemu against the real qemu-img; what it did is checked with qemu-io and qemu-img
 * directly.
 */
import assert from "node:assert/strict"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import { DiskImageError } from "../../src/domain/errors/store.ts"
import { DiskImagesQemu } from "../../src/layers/qemu/disk_images_qemu.ts"
import { DiskImages } from "../../src/services/disk_images.ts"
import { runFailure, runTest } from "../support/effect.ts"
import { tool } from "../support/host_tool.ts"

const MiB = 1024 * 1024

const sha256 = async (path: string) =>
  Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", await Deno.readFile(path))))
    .map((byte) => byte.toString(16).padStart(2, "0")).join("")

const withImages = <A, E>(
  body: (images: typeof DiskImages.Service, dir: string) => Effect.Effect<A, E>,
) =>
  Effect.acquireUseRelease(
    Effect.promise(() => Deno.makeTempDir()),
    (dir) => Effect.flatMap(DiskImages, (images) => body(images, dir)),
    (dir) => Effect.promise(() => Deno.remove(dir, { recursive: true })),
  ).pipe(Effect.provide(DiskImagesQemu), Effect.provide(NodeContext.layer))

Deno.test("create makes an empty qcow2 of the size asked for", async () => {
  await runTest(withImages((images, dir) =>
    Effect.gen(function* () {
      yield* images.create({ path: `${dir}/a.qcow2`, sizeBytes: 64 * MiB })
      const raw = JSON.parse(
        yield* Effect.promise(() => tool("qemu-img", "info", "--output=json", `${dir}/a.qcow2`)),
      )
      assert.equal(raw.format, "qcow2")
      assert.equal(raw["virtual-size"], 64 * MiB)
      const info = yield* images.info(`${dir}/a.qcow2`)
      assert.equal(info.format, "qcow2")
      assert.equal(info.virtualSize, 64 * MiB)
      assert.ok(info.actualSize > 0)
      assert.equal(info.backingFile, undefined)
    })
  ))
})

Deno.test("an overlay reads through to its backing file and never writes it; convert flattens", async () => {
  await runTest(withImages((images, dir) =>
    Effect.gen(function* () {
      const base = `${dir}/base.qcow2`
      yield* images.create({ path: base, sizeBytes: 16 * MiB })
      yield* Effect.promise(() => tool("qemu-io", "-c", "write -P 0xab 0 1M", base))
      const before = yield* Effect.promise(() => sha256(base))

      yield* images.overlay({ path: `${dir}/work.qcow2`, backing: base })
      yield* Effect.promise(() => tool("qemu-io", "-c", "write -P 0xcd 1M 1M", `${dir}/work.qcow2`))
      assert.equal((yield* images.info(`${dir}/work.qcow2`)).backingFile, base)
      assert.equal(yield* Effect.promise(() => sha256(base)), before)

      yield* images.convert({ from: `${dir}/work.qcow2`, to: `${dir}/flat.qcow2` })
      const flat = yield* images.info(`${dir}/flat.qcow2`)
      assert.equal(flat.backingFile, undefined)
      assert.equal(flat.virtualSize, 16 * MiB)
      // Both writes are in the standalone copy.
      yield* Effect.promise(() =>
        tool(
          "qemu-io",
          "-r",
          "-c",
          "read -P 0xab 0 1M",
          "-c",
          "read -P 0xcd 1M 1M",
          `${dir}/flat.qcow2`,
        )
      )
    })
  ))
})

Deno.test("convert reads other formats, and a raw file given as such", async () => {
  await runTest(withImages((images, dir) =>
    Effect.gen(function* () {
      yield* Effect.promise(() =>
        tool("qemu-img", "create", "-q", "-f", "raw", `${dir}/disk.raw`, "4M")
      )
      yield* images.convert({ from: `${dir}/disk.raw`, to: `${dir}/disk.qcow2`, fromFormat: "raw" })
      const info = yield* images.info(`${dir}/disk.qcow2`)
      assert.equal(info.format, "qcow2")
      assert.equal(info.virtualSize, 4 * MiB)
    })
  ))
})

Deno.test("a failure carries qemu-img's explanation", async () => {
  const cause = await runFailure(withImages((images, dir) => images.info(`${dir}/missing.qcow2`)))
  const error = cause._tag === "Fail" ? cause.error : undefined
  assert.ok(error instanceof DiskImageError)
  assert.equal(error.operation, "inspect")
  assert.match(error.message, /missing\.qcow2.*No such file or directory/)
})

Deno.test("a missing qemu-img says which package to install", async () => {
  const path = Deno.env.get("PATH") ?? ""
  Deno.env.set("PATH", "/nonexistent")
  try {
    const cause = await runFailure(
      withImages((images, dir) => images.create({ path: `${dir}/x.qcow2`, sizeBytes: MiB })),
    )
    assert.equal(cause._tag, "Fail")
    assert.match(
      cause._tag === "Fail" ? cause.error.message : "",
      /qemu-img is not installed \(install qemu-utils/,
    )
  } finally {
    Deno.env.set("PATH", path)
  }
})

Deno.test("info works while another process holds the image open for writing", async () => {
  await runTest(withImages((images, dir) =>
    Effect.gen(function* () {
      const path = `${dir}/busy.qcow2`
      yield* images.create({ path, sizeBytes: 16 * MiB })
      // qemu-io takes QEMU's write lock on the image, as a running helper VM does, and keeps it
      // until it is killed (its sleep is in ms: a short one could end on a loaded machine before
      // the loop below sees the lock).
      const holder = new Deno.Command("qemu-io", {
        args: ["-f", "qcow2", path, "-c", "sleep 600000"],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn()
      let exited: Deno.CommandStatus | undefined
      const status = holder.status.then((done) => (exited = done))
      const stderr = new Response(holder.stderr).text()
      yield* Effect.addFinalizer(() =>
        Effect.promise(async () => {
          if (exited === undefined) holder.kill()
          await status
        })
      )
      // Wait until the lock is really held: a plain `qemu-img info` is refused.
      const locked = () =>
        new Deno.Command("qemu-img", { args: ["info", path], stdout: "null", stderr: "null" })
          .output().then((output) => !output.success)
      let held = false
      for (let tries = 0; tries < 200 && !held && exited === undefined; tries++) {
        held = yield* Effect.promise(locked)
        if (!held) yield* Effect.sleep("100 millis")
      }
      if (exited !== undefined) {
        assert.fail(
          `qemu-io exited (${exited.code}) before the test ended: ${yield* Effect.promise(() =>
            stderr
          )}`,
        )
      }
      assert.ok(held, "qemu-io took the image's write lock")
      const info = yield* images.info(path)
      assert.equal(info.virtualSize, 16 * MiB)
    }).pipe(Effect.scoped)
  ))
})

Deno.test("info of a qcow2 says what qemu-img info says, from the header or from qemu-img", async () => {
  await runTest(withImages((images, dir) =>
    Effect.gen(function* () {
      const qemuInfo = (path: string) =>
        Effect.promise(async () =>
          JSON.parse(await tool("qemu-img", "info", "--output=json", "-f", "qcow2", path))
        )
      // An odd size with data in it, as the header read sees it.
      const base = `${dir}/base.qcow2`
      yield* images.create({ path: base, sizeBytes: 16 * MiB + 4096 })
      yield* Effect.promise(() => tool("qemu-io", "-c", "write -P 0xab 0 3M", base))
      const overlay = `${dir}/overlay.qcow2`
      yield* images.overlay({ path: overlay, backing: base, sizeBytes: 32 * MiB })
      for (const path of [base, overlay]) {
        const [ours, theirs] = [yield* images.info(path, "qcow2"), yield* qemuInfo(path)]
        assert.equal(ours.format, "qcow2")
        assert.equal(ours.virtualSize, theirs["virtual-size"], path)
        assert.equal(ours.actualSize, theirs["actual-size"], path)
        assert.equal(ours.backingFile, theirs["full-backing-filename"], path)
      }
      // A file that only claims to be a qcow2 is qemu-img's to refuse.
      const fake = `${dir}/fake.qcow2`
      yield* Effect.promise(() => Deno.writeFile(fake, new Uint8Array([0x51, 0x46, 0x49, 0xfb])))
      const error = yield* Effect.flip(images.info(fake, "qcow2"))
      assert.ok(error instanceof DiskImageError)
    })
  ))
})

/** A qcow2 of a disk partitioned by sfdisk with `script`, and `bootCode` written at its start. */
const partitionedDisk = (dir: string, name: string, script: string, bootCode?: Uint8Array) =>
  Effect.promise(async () => {
    const raw = `${dir}/${name}.raw`
    await tool("truncate", "-s", String(64 * MiB), raw)
    const sfdisk = new Deno.Command("sfdisk", { args: ["-q", raw], stdin: "piped" }).spawn()
    const writer = sfdisk.stdin.getWriter()
    await writer.write(new TextEncoder().encode(script))
    await writer.close()
    assert.ok((await sfdisk.status).success, "sfdisk partitioned the disk")
    if (bootCode !== undefined) {
      const file = await Deno.open(raw, { write: true })
      await file.write(bootCode)
      file.close()
    }
    await tool("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, `${dir}/${name}.qcow2`)
    return `${dir}/${name}.qcow2`
  })

Deno.test("firmware reads the partition table sfdisk wrote: an ESP alone means UEFI", async () => {
  await runTest(withImages((images, dir) =>
    Effect.gen(function* () {
      const esp = "label: gpt\nsize=16MiB, type=uefi\ntype=linux\n"
      const uefi = yield* partitionedDisk(dir, "uefi", esp)
      assert.equal(yield* images.firmware(uefi), "uefi")
      // GRUB's boot.img in the protective MBR: a BIOS bootloader is installed too.
      const both = yield* partitionedDisk(dir, "both", esp, Uint8Array.from([0xeb, 0x63, 0x90]))
      assert.equal(yield* images.firmware(both), "bios")
      const mbr = yield* partitionedDisk(dir, "mbr", "label: dos\ntype=83\n")
      assert.equal(yield* images.firmware(mbr), "bios")
      const mbrEsp = yield* partitionedDisk(dir, "mbr-esp", "label: dos\ntype=ef, size=16MiB\n")
      assert.equal(yield* images.firmware(mbrEsp), "uefi")
    })
  ))
})

Deno.test("firmware of a file that is not a qcow2 fails with qemu-img's reason", async () => {
  const cause = await runFailure(withImages((images, dir) =>
    Effect.gen(function* () {
      yield* Effect.promise(() => Deno.writeTextFile(`${dir}/text`, "not a disk"))
      return yield* images.firmware(`${dir}/text`)
    })
  ))
  const error = cause._tag === "Fail" ? cause.error : undefined
  assert.ok(error instanceof DiskImageError, String(cause))
  assert.match(error.message, /text/)
})
