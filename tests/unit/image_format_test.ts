/**
 * The strict format probe of pulled images, on files qemu-img itself makes: plain raw and qcow2
 * are taken; anything that refers to another file, or is not a disk at all, is refused, also
 * through `transient image pull` (from a file and over HTTP).
 */
import assert from "node:assert/strict"
import { PROBE_BYTES, probeImageFormat } from "../../src/domain/image_format.ts"
import { tool } from "../host_tool.ts"
import { transient } from "../run_transient.ts"

const dir = await Deno.makeTempDir({ prefix: "transient-format-" })
const secret = `${dir}/secret`
await Deno.writeTextFile(secret, "host secret\n".repeat(1000))

const probe = async (path: string) => {
  const bytes = await Deno.readFile(path)
  return probeImageFormat(bytes.subarray(0, PROBE_BYTES), bytes.length)
}

const qcow2 = async (name: string, ...options: Array<string>) => {
  await tool("qemu-img", "create", "-q", "-f", "qcow2", ...options, `${dir}/${name}`, "1M")
  return `${dir}/${name}`
}

/** A qcow2 whose data lives in the host file `secret`, as `qemu-img amend` makes one. */
const withExternalData = async (name: string) => {
  const path = await qcow2(name, "-o", `data_file=${dir}/${name}.data,data_file_raw=on`)
  await tool("qemu-img", "amend", "-q", "-f", "qcow2", "-o", `data_file=${secret}`, path)
  return path
}

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
  assert.match(await refusal(await withExternalData("external.qcow2")), /external/)
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

Deno.test("image pull refuses an image with an external data file, from a file and over HTTP", async () => {
  const hostile = await withExternalData("hostile.qcow2")
  const bytes = await Deno.readFile(hostile)
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(bytes),
  )
  try {
    const store = `${dir}/store`
    const env = { TRANSIENT_IMAGE_BACKEND: store }
    const url = `http://127.0.0.1:${server.addr.port}/hostile.qcow2`
    for (const spec of [`fromfile,file=${hostile}`, `fromhttp,http=${url}`]) {
      const pulled = await transient(["image", "pull", spec, "--progress", "plain"], { env })
      assert.equal(pulled.code, 1, pulled.stdout + pulled.stderr)
      assert.match(
        pulled.stderr,
        /^error: The image from .* is refused: it keeps its data in an external file$/m,
      )
    }
    const listed = await transient(["image", "ls", "--json"], { env })
    assert.deepEqual(JSON.parse(listed.stdout), [])
    assert.deepEqual(
      [...Deno.readDirSync(`${store}/.working`)].filter((e) => !e.name.endsWith(".lock")),
      [],
    )
  } finally {
    await server.shutdown()
  }
})

Deno.test("a qcow2 cut short by a download without a length is refused, not published", async () => {
  const whole = `${dir}/whole.qcow2`
  await tool("qemu-img", "create", "-q", "-f", "qcow2", whole, "8M")
  await tool("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 6M", whole)
  const cut = (await Deno.readFile(whole)).subarray(0, 3 * 1024 * 1024)
  // A body streamed in chunks has no Content-Length: its end looks like a normal end.
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(ReadableStream.from([cut.subarray(0, 1 << 20), cut.subarray(1 << 20)])),
  )
  try {
    const env = { TRANSIENT_IMAGE_BACKEND: `${dir}/store-cut` }
    const url = `http://127.0.0.1:${server.addr.port}/cut.qcow2`
    const pulled = await transient(["image", "pull", `cut,http=${url}`, "--progress", "plain"], {
      env,
    })
    assert.equal(pulled.code, 1, pulled.stdout + pulled.stderr)
    assert.match(
      pulled.stderr,
      /^error: The image from .* is refused: it is damaged or incomplete/m,
    )
    const listed = await transient(["image", "ls", "--json"], { env })
    assert.deepEqual(JSON.parse(listed.stdout), [])
  } finally {
    await server.shutdown()
  }
})

globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }))
