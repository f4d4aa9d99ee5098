/**
 * `transient image export` and `build --format` from the command line: the usage errors (exit
 * status 2, one line, nothing written) and an export of a qcow2 file.
 */
import assert from "node:assert/strict"
import { transient } from "../support/run_transient.ts"

const errorLines = (stderr: string) => stderr.trim().split("\n").filter((line) => line !== "")

Deno.test("export usage errors: one line each, exit status 2, nothing written", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "transient-export-cli-" })
  const source = `${dir}/src.qcow2`
  const made = await new Deno.Command("qemu-img", {
    args: ["create", "-q", "-f", "qcow2", source, "4M"],
  }).output()
  assert.ok(made.success)
  const store = await Deno.makeTempDir({ prefix: "transient-export-store-" })
  const env = { TRANSIENT_IMAGE_BACKEND: store }
  const [unknownFormat, contradiction, noExtension, subformat, buildVmdk, ok] = await Promise.all([
    transient(["image", "export", "--format", "qed", source, `${dir}/out.qed`], { env }),
    transient(["image", "export", "--format", "vhdx", source, `${dir}/out.vmdk`], { env }),
    transient(["image", "export", source, `${dir}/out.iso`], { env }),
    transient(["image", "export", "--vmdk-subformat", "monolithicSparse", source, `${dir}/o.vhd`], {
      env,
    }),
    transient(["build", "--name", "web", "--format", "vmdk", "--dry-run", "testdata/scratch-xfs"], {
      env,
    }),
    transient(["image", "export", "--progress", "plain", source, `${dir}/out.raw`], { env }),
  ])

  await t.step("an unknown format lists the formats", () => {
    assert.equal(unknownFormat.code, 2)
    assert.match(unknownFormat.stderr, /qcow2, raw, vmdk, vhdx, vhd, vhd-dynamic, ova/)
  })
  await t.step("an extension that contradicts --format names the path", () => {
    assert.equal(contradiction.code, 2)
    const lines = errorLines(contradiction.stderr)
    assert.equal(lines.length, 1, contradiction.stderr)
    assert.match(lines[0]!, /out\.vmdk .*not a vhdx file/)
  })
  await t.step("an extension that names no format, without --format, lists the formats", () => {
    assert.equal(noExtension.code, 2)
    assert.equal(errorLines(noExtension.stderr).length, 1)
    assert.match(noExtension.stderr, /out\.iso.*give --format \(one of qcow2, raw, vmdk/)
  })
  await t.step("--vmdk-subformat only goes with a VMDK", () => {
    assert.equal(subformat.code, 2)
    assert.match(subformat.stderr, /--vmdk-subformat applies to VMDK/)
  })
  await t.step("build --format vmdk without --local names --local and image export", () => {
    assert.equal(buildVmdk.code, 2)
    const lines = errorLines(buildVmdk.stderr)
    assert.equal(lines.length, 1, buildVmdk.stderr)
    assert.match(lines[0]!, /store keeps qcow2/)
    assert.match(lines[0]!, /--local/)
    assert.match(lines[0]!, /transient image export web PATH/)
  })
  await t.step("a qcow2 file exported as raw: the file alone, no temporaries", async () => {
    assert.equal(ok.code, 0, ok.stderr)
    assert.match(ok.stdout, /Exported .*src\.qcow2 to .*out\.raw \(raw\)/)
    const names = []
    for await (const entry of Deno.readDir(dir)) names.push(entry.name)
    assert.deepEqual(names.sort(), ["out.raw", "src.qcow2"])
    assert.equal((await Deno.stat(`${dir}/out.raw`)).size, 4 * 1024 * 1024)
  })
  await Deno.remove(dir, { recursive: true })
  await Deno.remove(store, { recursive: true })
})
