import assert from "node:assert/strict"
import { analyzeImagefile } from "../../src/domain/imagefile/mod.ts"
import { type BuildPlan, planBuild } from "../../src/domain/plan.ts"

const plan = (text: string): BuildPlan => {
  const { imagefile, diagnostics } = analyzeImagefile(text, "Imagefile")
  assert.deepEqual(diagnostics.filter((d) => d.severity === "error"), [])
  return planBuild(imagefile)
}

const MiB = 1024 * 1024

Deno.test("partitions are laid out back to back from 1 MiB; the SIZE-less one takes the rest", () => {
  const { base } = plan(
    "FROM scratch\nDISK 1 GB GPT\nPARTITION 1 SIZE 8 MB FLAGS bios_grub\nPARTITION 2 SIZE 100 MB FORMAT swap\nPARTITION 3 FORMAT ext4 MOUNT / FLAGS boot\n",
  )
  assert.equal(base._tag, "Scratch")
  if (base._tag !== "Scratch") return
  assert.equal(base.layout.sizeBytes, 1024 * MiB)
  assert.deepEqual(base.layout.partitions, [
    { number: 1, startSector: 2048, sizeSectors: 8 * 2048, type: "bios_grub", bootable: false },
    {
      number: 2,
      startSector: 2048 + 8 * 2048,
      sizeSectors: 100 * 2048,
      type: "swap",
      bootable: false,
    },
    {
      number: 3,
      startSector: 2048 + 108 * 2048,
      // Up to the last usable sector: the backup GPT keeps the last 33.
      sizeSectors: 1024 * 2048 - 33 - (2048 + 108 * 2048),
      type: "linux",
      bootable: true,
    },
  ])
})

Deno.test("on MBR the last partition runs to the very end of the disk", () => {
  const { base } = plan("FROM scratch\nDISK 64 MB MBR\nPARTITION 1 FORMAT ext4 MOUNT /\n")
  assert.ok(base._tag === "Scratch")
  assert.equal(base.layout.partitions[0]?.sizeSectors, 64 * 2048 - 2048)
})

Deno.test("every instruction is one step that keeps its text; mounts follow the last PARTITION", () => {
  const { steps, sources } = plan(
    [
      "FROM scratch",
      "DISK 1 GB GPT",
      "PARTITION 1 SIZE 100 MB FORMAT vfat MOUNT /boot/efi FLAGS efi",
      "PARTITION 2 FORMAT ext4 MOUNT /",
      "ADD rootfs.tar.gz /",
      "COPY a b /opt/",
      "RUN apt-get update && \\",
      "    apt-get install -y vim",
      "INSPECT",
    ].join("\n"),
  )
  assert.deepEqual(steps.map((s) => s.index), [1, 2, 3, 4, 5, 6, 7, 8])
  assert.deepEqual(steps.map((s) => s.actions.map((a) => a._tag)), [
    [],
    ["CreateDisk"],
    ["Format"],
    ["Format", "Mount"],
    ["Add"],
    ["Copy"],
    ["Run"],
    ["Inspect"],
  ])
  const mount = steps[3]?.actions[1]
  assert.ok(mount?._tag === "Mount")
  assert.deepEqual(mount.mounts, [{ partition: 2, path: "/" }, { partition: 1, path: "/boot/efi" }])
  assert.deepEqual(sources, ["rootfs.tar.gz", "a", "b"])
  assert.equal(steps[1]?.text, "DISK 1 GB GPT")
})

Deno.test("FROM an image resolves the base first and creates no disk", () => {
  const { base, steps } = plan("FROM alpine,http=http://127.0.0.1/a.qcow2\nRUN true\n")
  assert.deepEqual(base, { _tag: "Image", spec: "alpine,http=http://127.0.0.1/a.qcow2" })
  assert.deepEqual(steps[0]?.actions.map((a) => a._tag), ["UseBase"])
})
