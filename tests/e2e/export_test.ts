/**
 * `transient image export` against the real qemu-img: each format read back by `qemu-img info`
 * and `check`, its content identical to the qcow2's by `qemu-img compare`; the fixed VHD's footer;
 * the OVA's members and digests; an interrupted export and a full disk leave nothing.
 *
 * The source is a qcow2 made by qemu-img and qemu-io (no VM needed): a decimal size, as DISK
 * sizes may be, with data at its start, its middle and its last bytes.
 */
import assert from "node:assert/strict"
import { createHash } from "node:crypto"
import { MAIN, transient } from "../support/run_transient.ts"
import { runHost, tool } from "../support/host_tool.ts"
import { mountTmpfs, tmpfsProblem, unmountTmpfs } from "../support/tmpfs.ts"

const MiB = 1024 * 1024
const work = await Deno.makeTempDir({ prefix: "transient-export-e2e-" })
const source = `${work}/source.qcow2`
// 100,000,000 bytes: qcow2 rounds it to 512-byte sectors, not to a MiB.
await tool("qemu-img", "create", "-q", "-f", "qcow2", source, "100000000")
for (const [pattern, offset, length] of [[0x5a, 0, 3 * MiB], [0xa5, 50 * MiB, MiB]] as const) {
  await tool("qemu-io", "-f", "qcow2", "-c", `write -P ${pattern} ${offset} ${length}`, source)
}
await tool("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 99999744 512", source)

const exported = async (name: string, ...extra: ReadonlyArray<string>) => {
  const path = `${work}/${name}`
  const result = await transient(["image", "export", "--progress", "plain", ...extra, source, path])
  assert.equal(result.code, 0, result.stderr)
  return path
}

/** What qemu-img makes of `path`: probed, or read as `format` (a fixed VHD probes as raw). */
const info = async (path: string, format?: string) =>
  JSON.parse(
    await tool("qemu-img", "info", "--output=json", ...(format ? ["-f", format] : []), path),
  ) as {
    format: string
    "virtual-size": number
    "format-specific"?: { data?: { "create-type"?: string } }
  }

const assertIdentical = async (path: string, format: string) => {
  const compared = await runHost(["qemu-img", "compare", "-f", "qcow2", "-F", format, source, path])
  assert.equal(compared.code, 0, `${path}: ${compared.stdout}${compared.stderr}`)
  assert.match(compared.stdout, /Images are identical/)
}

/** The names in `dir`, sorted. */
const namesIn = async (dir: string) => {
  const names = []
  for await (const entry of Deno.readDir(dir)) names.push(entry.name)
  return names.sort()
}

Deno.test("each format reads back with the qcow2's content", async (t) => {
  const cases = [
    ["disk.raw", "raw", [], false],
    ["disk.vmdk", "vmdk", [], true],
    ["sparse.vmdk", "vmdk", ["--vmdk-subformat", "monolithicSparse"], true],
    ["disk.vhdx", "vhdx", [], true],
    ["dynamic.vhd", "vpc", ["--format", "vhd-dynamic"], false],
    ["disk.vhd", "vpc", [], false],
  ] as const
  for (const [name, format, extra, checkable] of cases) {
    await t.step(`${name} (${extra.join(" ") || "from its extension"})`, async () => {
      const path = await exported(name, ...extra)
      // A fixed VHD has its footer only, at the end: qemu-img's probe takes it for raw.
      const fixedVhd = name === "disk.vhd"
      const read = await info(path, fixedVhd ? format : undefined)
      assert.equal(read.format, format)
      if (fixedVhd) assert.equal(read["virtual-size"], 96 * MiB)
      if (checkable) await tool("qemu-img", "check", "-f", format, path)
      await assertIdentical(path, format)
    })
  }
  const vmdk = await info(`${work}/disk.vmdk`)
  assert.equal(vmdk["format-specific"]?.data?.["create-type"], "streamOptimized")
  const sparse = await info(`${work}/sparse.vmdk`)
  assert.equal(sparse["format-specific"]?.data?.["create-type"], "monolithicSparse")
})

Deno.test("the VHD is fixed, its size a whole MiB, as Azure takes it", async () => {
  const path = `${work}/disk.vhd`
  await Deno.stat(path).catch(() => exported("disk.vhd"))
  const bytes = await Deno.readFile(path)
  const footer = new DataView(bytes.buffer, bytes.length - 512, 512)
  assert.equal(
    new TextDecoder().decode(bytes.subarray(bytes.length - 512, bytes.length - 504)),
    "conectix",
  )
  assert.equal(footer.getUint32(60), 2, "disk type 2: fixed")
  const currentSize = Number(footer.getBigUint64(48))
  assert.equal(currentSize % MiB, 0, `${currentSize} is not a whole MiB`)
  assert.equal(currentSize, 96 * MiB)
  assert.equal(bytes.length - 512, currentSize)
})

/** The members of a ustar archive, in order. */
const tarMembers = (bytes: Uint8Array) => {
  const members: Array<{ name: string; data: Uint8Array }> = []
  let offset = 0
  const text = new TextDecoder()
  while (offset + 512 <= bytes.length && bytes[offset] !== 0) {
    const header = bytes.subarray(offset, offset + 512)
    const name = text.decode(header.subarray(0, 100)).replace(/\0.*$/s, "")
    const size = parseInt(text.decode(header.subarray(124, 136)).replace(/\0.*$/s, ""), 8)
    members.push({ name, data: bytes.subarray(offset + 512, offset + 512 + size) })
    offset += 512 + Math.ceil(size / 512) * 512
  }
  return members
}

Deno.test("the OVA is a tar with the OVF first, the disk, and a manifest that matches", async () => {
  const path = await exported("web.ova", "--cpus", "3", "--memory", "768")
  const listed = await tool("tar", "tf", path)
  assert.deepEqual(listed.trim().split("\n"), ["web.ovf", "web-disk1.vmdk", "web.mf"])
  const members = tarMembers(await Deno.readFile(path))
  const manifest = new TextDecoder().decode(members[2]!.data)
  const lines = manifest.trim().split("\n")
  assert.equal(lines.length, 2)
  for (const member of members.slice(0, 2)) {
    const digest = createHash("sha256").update(member.data).digest("hex")
    assert.ok(lines.includes(`SHA256(${member.name})= ${digest}`), `${member.name}: ${manifest}`)
  }
  const ovf = new TextDecoder().decode(members[0]!.data)
  assert.match(ovf, /<rasd:VirtualQuantity>3<\/rasd:VirtualQuantity>/)
  assert.match(ovf, /<rasd:VirtualQuantity>768<\/rasd:VirtualQuantity>/)
  assert.match(ovf, new RegExp(`ovf:size="${members[1]!.data.length}"`))
  assert.match(ovf, /vmw:key="firmware" vmw:value="bios"/)
  // The disk inside is the qcow2's content, as a streamOptimized VMDK.
  const disk = `${work}/from-ova.vmdk`
  await Deno.writeFile(disk, members[1]!.data)
  assert.equal((await info(disk))["format-specific"]?.data?.["create-type"], "streamOptimized")
  await assertIdentical(disk, "vmdk")
})

Deno.test("an export stopped by SIGINT mid-way leaves no file", async () => {
  const dir = await Deno.makeTempDir({ dir: work, prefix: "interrupted-" })
  // Random data, which a streamOptimized VMDK compresses slowly: seconds of work.
  const random = `${dir}/random.raw`
  await tool("dd", "if=/dev/urandom", `of=${random}`, "bs=1M", "count=384", "status=none")
  const big = `${work}/big.qcow2`
  await tool("qemu-img", "convert", "-f", "raw", "-O", "qcow2", random, big)
  await Deno.remove(random)
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "image", "export", "--progress", "plain", big, `${dir}/big.vmdk`],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn()
  let output = ""
  const collected = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) output += text
  })()
  const stdout = child.stdout.cancel()
  const deadline = performance.now() + 30_000
  while (!/Converting big\.vmdk/.test(output) && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  // Let qemu-img write part of the file.
  await new Promise((resolve) => setTimeout(resolve, 700))
  assert.ok((await namesIn(dir)).some((name) => name.endsWith(".part")), "no temporary yet")
  child.kill("SIGINT")
  const status = await child.status
  await Promise.all([collected, stdout])
  assert.equal(status.code, 130, output)
  assert.deepEqual(await namesIn(dir), [])
  await Deno.remove(big)
})

const noTmpfs = await tmpfsProblem("the full-disk export test")

Deno.test({
  name: "an export to a full disk is one line naming the file, and leaves nothing",
  ignore: noTmpfs !== undefined,
  fn: async () => {
    const mounted = await mountTmpfs(2)
    assert.ok("dir" in mounted)
    try {
      const path = `${mounted.dir}/disk.raw`
      const result = await transient(["image", "export", "--progress", "plain", source, path])
      assert.equal(result.code, 1, result.stderr)
      const errors = result.stderr.split("\n").filter((line) => line.startsWith("error:"))
      assert.equal(errors.length, 1, result.stderr)
      assert.equal(errors[0], `error: Cannot export to ${path}: no space left on the device`)
      assert.deepEqual(await namesIn(mounted.dir), [])
    } finally {
      await unmountTmpfs(mounted.dir)
    }
  },
})

globalThis.addEventListener("unload", () => {
  Deno.removeSync(work, { recursive: true })
})
