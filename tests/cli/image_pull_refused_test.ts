/**
 * `transient image pull` refuses what the format probe refuses, from a file and over HTTP, and
 * publishes nothing.
 */
import assert from "node:assert/strict"
import { tool } from "../support/host_tool.ts"
import { qcow2WithExternalData } from "../support/qcow2_files.ts"
import { transient } from "../support/run_transient.ts"

const dir = await Deno.makeTempDir({ prefix: "transient-pull-refused-" })
const secret = `${dir}/secret`
await Deno.writeTextFile(secret, "host secret\n".repeat(1000))

Deno.test("image pull refuses an image with an external data file, from a file and over HTTP", async () => {
  const hostile = await qcow2WithExternalData(`${dir}/hostile.qcow2`, secret)
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
