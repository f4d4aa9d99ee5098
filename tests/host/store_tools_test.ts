/**
 * The store's stages against real tools: archives GNU tar writes, read by the store's tar reader;
 * a decompressing process that holds back its input while its output is not read.
 */
import assert from "node:assert/strict"
import * as zlib from "node:zlib"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { throughTool } from "../../src/layers/store/decompress_process.ts"
import { extractBoxImage } from "../support/box_image.ts"
import { chunked } from "../support/bytes.ts"
import { runFailure, runTest } from "../support/effect.ts"

const MiB = 1024 * 1024

const tarOf = async (files: Record<string, Uint8Array>): Promise<Uint8Array> => {
  const dir = await Deno.makeTempDir()
  for (const [name, data] of Object.entries(files)) {
    await Deno.mkdir(`${dir}/${name}`.replace(/\/[^/]*$/, ""), { recursive: true })
    await Deno.writeFile(`${dir}/${name}`, data)
  }
  const output = await new Deno.Command("tar", {
    args: ["-C", dir, "--format=pax", "-cf", "-", ...Object.keys(files)],
    stdout: "piped",
  }).output()
  await Deno.remove(dir, { recursive: true })
  assert.ok(output.success)
  return output.stdout
}

Deno.test("box.img comes out of a tar whatever the chunking, long names included", async () => {
  const image = new Uint8Array(70_000).map((_, i) => i % 253)
  const longDir = "d".repeat(120)
  const archive = await tarOf({
    "metadata.json": new TextEncoder().encode("{}"),
    [`${longDir}/box.img`]: image,
    "Vagrantfile": new TextEncoder().encode("x"),
  })
  for (const size of [1, 7, 512, 4096, archive.length]) {
    assert.deepEqual(await runTest(extractBoxImage(archive, size)), image, `chunks of ${size}`)
  }
})

Deno.test("a tar without box.img, or cut short, fails with the problem", async () => {
  const archive = await tarOf({
    "box.img": new Uint8Array(10_000).fill(1),
    "other": new Uint8Array(10),
  })
  const none = await tarOf({ "metadata.json": new Uint8Array(3) })
  assert.match(String(await runFailure(extractBoxImage(none, 100))), /Missing/)
  assert.match(
    String(await runFailure(extractBoxImage(archive.subarray(0, 5000), 100))),
    /Truncated/,
  )
  assert.match(String(await runFailure(extractBoxImage(archive.subarray(0, 300), 100))), /Missing/)
})

Deno.test("a decompressing tool holds back its input while its output is not read", async () => {
  // Random bytes: zstd stores them as they are, so 32 MiB in is 32 MiB out.
  const input = new Uint8Array(32 * MiB)
  for (let i = 0; i < input.length; i += 65536) crypto.getRandomValues(input.subarray(i, i + 65536))
  const compressed = zlib.zstdCompressSync(input)
  let taken = 0
  const source = chunked(compressed, MiB).pipe(
    Stream.tap((chunk) => Effect.sync(() => taken += chunk.length)),
  )
  const decoded = throughTool(source, { image: "held", source: "test" }, "zstd")
  const consumed = Effect.scoped(Effect.gen(function* () {
    const pull = yield* Stream.toPull(decoded)
    let out = (yield* pull).pipe(Chunk.reduce(0, (sum, bytes) => sum + bytes.length))
    // A slow consumer: nothing more is read for a while.
    yield* Effect.sleep("1 second")
    const takenWhileIdle = taken
    while (true) {
      const more = yield* Effect.option(pull)
      if (more._tag === "None") break
      out += Chunk.reduce(more.value, 0, (sum, bytes) => sum + bytes.length)
    }
    return { takenWhileIdle, out }
  }))
  const { takenWhileIdle, out } = await runTest(Effect.provide(consumed, NodeContext.layer))
  assert.equal(out, input.length)
  // Pipe buffers and a chunk or two in flight, not the whole input.
  assert.ok(takenWhileIdle <= 8 * MiB, `took ${takenWhileIdle} bytes while the output sat unread`)
})
