/**
 * The export formats: which format a path asks for, the qemu-img argv of each, and Azure's
 * whole-MiB rule for fixed VHDs.
 */
import assert from "node:assert/strict"
import {
  convertArgv,
  convertTarget,
  EXPORT_FORMATS,
  exportCommands,
  exportFormatFor,
  MiB,
  roundUpToMiB,
} from "../../src/domain/export_format.ts"

const argvFor = (format: (typeof EXPORT_FORMATS)[number], subformat?: "monolithicSparse") =>
  convertArgv({
    from: "in.qcow2",
    to: "out",
    fromFormat: "qcow2",
    target: convertTarget(format, subformat),
  }).join(" ")

Deno.test("each format is written by the qemu-img convert its target expects", () => {
  assert.equal(argvFor("qcow2"), "convert -f qcow2 -O qcow2 in.qcow2 out")
  assert.equal(argvFor("raw"), "convert -f qcow2 -O raw in.qcow2 out")
  assert.equal(
    argvFor("vmdk"),
    "convert -f qcow2 -O vmdk -o subformat=streamOptimized,adapter_type=lsilogic in.qcow2 out",
  )
  assert.equal(
    argvFor("vmdk", "monolithicSparse"),
    "convert -f qcow2 -O vmdk -o subformat=monolithicSparse,adapter_type=lsilogic in.qcow2 out",
  )
  assert.equal(argvFor("vhdx"), "convert -f qcow2 -O vhdx -o subformat=dynamic in.qcow2 out")
  assert.equal(
    argvFor("vhd"),
    "convert -f qcow2 -O vpc -o subformat=fixed,force_size=on in.qcow2 out",
  )
  assert.equal(argvFor("vhd-dynamic"), "convert -f qcow2 -O vpc -o subformat=dynamic in.qcow2 out")
})

Deno.test("an OVA's disk is a streamOptimized VMDK whatever subformat is asked for", () => {
  assert.deepEqual(convertTarget("ova", "monolithicSparse"), {
    qemuFormat: "vmdk",
    options: ["subformat=streamOptimized", "adapter_type=lsilogic"],
  })
})

Deno.test("the meter is asked for with -p before the formats", () => {
  const argv = convertArgv({
    from: "a",
    to: "b",
    progress: true,
    target: convertTarget("raw"),
  })
  assert.deepEqual(argv, ["convert", "-p", "-O", "raw", "a", "b"])
})

Deno.test("sizes round up to a whole MiB, and whole MiBs stay as they are", () => {
  assert.equal(roundUpToMiB(MiB), MiB)
  assert.equal(roundUpToMiB(MiB + 1), 2 * MiB)
  assert.equal(roundUpToMiB(1_000_000_000), 954 * MiB)
  assert.equal(roundUpToMiB(0), 0)
})

Deno.test("a fixed VHD of a decimal size is converted from a larger overlay of whole MiBs", () => {
  const commands = exportCommands({
    from: "web.qcow2",
    to: "web.vhd",
    format: "vhd",
    virtualSize: 2_000_000_000,
  })
  assert.deepEqual(commands.map((argv) => argv.join(" ")), [
    `qemu-img create -q -f qcow2 -b web.qcow2 -F qcow2 web.vhd.grown.qcow2 ${1908 * MiB}`,
    "qemu-img convert -f qcow2 -O vpc -o subformat=fixed,force_size=on web.vhd.grown.qcow2 web.vhd",
  ])
})

Deno.test("a fixed VHD of whole MiBs, and other formats, are converted directly", () => {
  for (const format of ["vhd", "vhd-dynamic", "raw"] as const) {
    const commands = exportCommands({ from: "a", to: "b", format, virtualSize: 3_000_000_000 })
    assert.equal(commands.length, format === "vhd" ? 2 : 1, format)
  }
  const whole = exportCommands({ from: "a", to: "b", format: "vhd", virtualSize: 2048 * MiB })
  assert.equal(whole.length, 1)
})

Deno.test("an OVA's dry run shows the VMDK its tar is made of", () => {
  const [convert] = exportCommands({ from: "a", to: "w.ova", format: "ova", virtualSize: MiB })
  assert.equal(convert?.at(-1), "w.ova.vmdk")
})

Deno.test("the format comes from the extension when --format is not given", () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ["out/web.qcow2", "qcow2"],
    ["web.raw", "raw"],
    ["web.img", "raw"],
    ["web.VMDK", "vmdk"],
    ["web.vhdx", "vhdx"],
    ["web.vhd", "vhd"],
    ["web.ova", "ova"],
  ]
  for (const [path, format] of cases) assert.deepEqual(exportFormatFor(path), { format }, path)
})

Deno.test("--format vhd-dynamic fits a .vhd, and any format fits a path without extension", () => {
  assert.deepEqual(exportFormatFor("web.vhd", "vhd-dynamic"), { format: "vhd-dynamic" })
  assert.deepEqual(exportFormatFor("disk", "vmdk"), { format: "vmdk" })
  assert.deepEqual(exportFormatFor("web.backup", "raw"), { format: "raw" })
})

Deno.test("an extension that contradicts --format is a problem that names both", () => {
  const result = exportFormatFor("web.vmdk", "vhdx")
  assert.ok("problem" in result)
  assert.match(result.problem, /web\.vmdk/)
  assert.match(result.problem, /vhdx/)
})

Deno.test("a path whose extension names no format, without --format, lists the formats", () => {
  for (const path of ["web", "web.iso", ".vmdk"]) {
    const result = exportFormatFor(path)
    assert.ok("problem" in result, path)
    for (const format of EXPORT_FORMATS) assert.ok(result.problem.includes(format), format)
  }
})
