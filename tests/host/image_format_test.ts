/**
 * The strict format probe of pulled images, on files qemu-img itself makes: plain raw and qcow2
 * are taken; anything that refers to another file, or is not a disk at all, is refused.
 */
import assert from "node:assert/strict"
import { PROBE_BYTES, probeImageFormat, probeLayer } from "../../src/domain/image_format.ts"
import { tool } from "../support/host_tool.ts"
import { qcow2File, qcow2WithExternalData } from "../support/qcow2_files.ts"

const dir = await Deno.makeTempDir({ prefix: "transient-format-" })
const secret = `${dir}/secret`
await Deno.writeTextFile(secret, "host secret\n".repeat(1000))

const probe = async (path: string) => {
  const bytes = await Deno.readFile(path)
  return probeImageFormat(bytes.subarray(0, PROBE_BYTES), bytes.length)
}

const qcow2 = (name: string, ...options: Array<string>) => qcow2File(`${dir}/${name}`, ...options)

const rawDisk = `${dir}/disk.raw`
{
  const bytes = new Uint8Array(1024 * 1024)
  bytes.set([0x55, 0xaa], 510)
  await Deno.writeFile(rawDisk, bytes)
}

Deno.test("a plain qcow2 (v2 and v3) and a raw disk with a partition table are taken", async () => {
  assert.deepEqual(await probe(await qcow2("v3.qcow2")), { _tag: "Accepted", format: "qcow2" })
  assert.deepEqual(await probe(await qcow2("v2.qcow2", "-o", "compat=0.10")), {
    _tag: "Accepted",
    format: "qcow2",
  })
  assert.deepEqual(await probe(rawDisk), { _tag: "Accepted", format: "raw" })
})

const refusal = async (path: string) => {
  const result = await probe(path)
  assert.equal(result._tag, "Refused", `${path} was taken`)
  return result._tag === "Refused" ? result.reason : ""
}

Deno.test("images that refer to host files are refused", async () => {
  const backed = await qcow2("backed.qcow2", "-b", secret, "-F", "raw")
  assert.match(await refusal(backed), /backing file/)
  assert.match(
    await refusal(await qcow2WithExternalData(`${dir}/external.qcow2`, secret)),
    /external/,
  )
  await tool("qemu-img", "create", "-q", "-f", "vmdk", `${dir}/disk.vmdk`, "1M")
  assert.match(await refusal(`${dir}/disk.vmdk`), /VMDK/)
  await Deno.writeTextFile(
    `${dir}/descriptor.vmdk`,
    `# Disk DescriptorFile\nRW 8 FLAT "${secret}" 0\n`,
  )
  assert.match(await refusal(`${dir}/descriptor.vmdk`), /VMDK/)
  await Deno.writeTextFile(`${dir}/json`, `json:{"file.filename":"${secret}"}`)
  assert.match(await refusal(`${dir}/json`), /json:/)
})

Deno.test("empty files, random bytes and text are not images", async () => {
  await Deno.writeFile(`${dir}/empty`, new Uint8Array())
  assert.match(await refusal(`${dir}/empty`), /empty/)
  await Deno.writeFile(`${dir}/random`, crypto.getRandomValues(new Uint8Array(64 * 1024)))
  assert.match(await refusal(`${dir}/random`), /neither a qcow2 image nor a raw disk/)
  assert.match(await refusal(secret), /not a whole number of sectors/)
})

globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }))

const layerProbe = async (path: string, backing: string | undefined) =>
  probeLayer((await Deno.readFile(path)).subarray(0, PROBE_BYTES), backing)

Deno.test("a step-cache layer is taken only with exactly the expected backing name", async () => {
  const parent = `${"a".repeat(64)}.qcow2`
  const layer = await qcow2("layer.qcow2", "-u", "-b", parent, "-F", "qcow2")
  assert.deepEqual(await layerProbe(layer, parent), { _tag: "Accepted", format: "qcow2" })
  assert.deepEqual(await layerProbe(await qcow2("first.qcow2"), undefined), {
    _tag: "Accepted",
    format: "qcow2",
  })
  const reasonOf = async (path: string, backing: string | undefined) => {
    const result = await layerProbe(path, backing)
    assert.equal(result._tag, "Refused", `${path} was taken`)
    return result._tag === "Refused" ? result.reason : ""
  }
  assert.match(
    await reasonOf(layer, `${"b".repeat(64)}.qcow2`),
    /^its backing file is "a{64}\.qcow2", not "b{64}\.qcow2"$/,
  )
  assert.match(await reasonOf(layer, undefined), /^it refers to a backing file/)
  // Planted: a layer whose backing file is a host file.
  const planted = await qcow2("planted.qcow2", "-u", "-b", secret, "-F", "raw")
  assert.match(await reasonOf(planted, parent), /its backing file is ".*secret", not/)
  assert.match(await reasonOf(await qcow2("plain.qcow2"), parent), /its backing file is "", not/)
  const external = await qcow2WithExternalData(`${dir}/layer-data.qcow2`, secret)
  assert.match(await reasonOf(external, undefined), /external/)
  assert.match(await reasonOf(rawDisk, undefined), /^it is not a qcow2 image$/)
})
