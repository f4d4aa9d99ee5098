/**
 * The store's pipeline stages on their own (tar extraction, the sparse sink, magic sniffing) and
 * its errors as values: tags to branch on, messages that survive the JSON boundary.
 */
import assert from "node:assert/strict"
import * as zlib from "node:zlib"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { SystemError } from "@effect/platform/Error"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import {
  ChecksumMismatch,
  StoreError,
  StoreIoError,
  TransferIncomplete,
} from "../../src/domain/errors/store.ts"
import { progressMeter } from "../../src/layers/qemu/disk_images_qemu.ts"
import { sniffCompression } from "../../src/layers/store/decompress.ts"
import { throughTool } from "../../src/layers/store/decompress_process.ts"
import { sparseFile } from "../../src/layers/store/sparse_file.ts"
import { tarEntry, type TarProblem } from "../../src/layers/store/tar_entry.ts"
import { concat } from "../bytes.ts"
import { runFailure, runTest } from "../effect_test.ts"

const MiB = 1024 * 1024

/** `bytes` as a stream of chunks of `size`. */
const chunked = (bytes: Uint8Array, size: number) =>
  Stream.fromIterable(
    Array.from(
      { length: Math.ceil(bytes.length / size) },
      (_, i) => bytes.subarray(i * size, (i + 1) * size),
    ),
  )

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

const boxImage = tarEntry(
  (path) => path === "box.img" || path.endsWith("/box.img"),
  (problem: TarProblem) => problem,
)

const extract = (archive: Uint8Array, size: number) =>
  Stream.runCollect(boxImage(chunked(archive, size))).pipe(
    Effect.map((chunks) => concat(Chunk.toArray(chunks))),
  )

Deno.test("box.img comes out of a tar whatever the chunking, long names included", async () => {
  const image = new Uint8Array(70_000).map((_, i) => i % 253)
  const longDir = "d".repeat(120)
  const archive = await tarOf({
    "metadata.json": new TextEncoder().encode("{}"),
    [`${longDir}/box.img`]: image,
    "Vagrantfile": new TextEncoder().encode("x"),
  })
  for (const size of [1, 7, 512, 4096, archive.length]) {
    assert.deepEqual(await runTest(extract(archive, size)), image, `chunks of ${size}`)
  }
})

Deno.test("a tar without box.img, or cut short, fails with the problem", async () => {
  const archive = await tarOf({
    "box.img": new Uint8Array(10_000).fill(1),
    "other": new Uint8Array(10),
  })
  const none = await tarOf({ "metadata.json": new Uint8Array(3) })
  assert.match(String(await runFailure(extract(none, 100))), /Missing/)
  assert.match(String(await runFailure(extract(archive.subarray(0, 5000), 100))), /Truncated/)
  assert.match(String(await runFailure(extract(archive.subarray(0, 300), 100))), /Missing/)
})

Deno.test("a pax record that claims gigabytes is refused, not allocated", async () => {
  // One header of type 'x' (pax) whose size field says 8 GiB - 1.
  const header = new Uint8Array(512)
  header.set(new TextEncoder().encode("PaxHeaders/box.img"), 0)
  header.set(new TextEncoder().encode("77777777777\0"), 124)
  header[156] = "x".charCodeAt(0)
  assert.match(String(await runFailure(extract(header, 512))), /Oversized/)
})

Deno.test("the sparse sink writes the bytes and leaves zero blocks as holes", async () => {
  const dir = await Deno.makeTempDir()
  const bytes = new Uint8Array(8 * 1024 * 1024)
  bytes.set(new Uint8Array(1000).fill(9), 3 * 1024 * 1024 + 5)
  bytes[bytes.length - 1] = 0
  const written = await runTest(
    Stream.run(chunked(bytes, 10_000), sparseFile(`${dir}/out`)).pipe(
      Effect.provide(NodeContext.layer),
    ),
  )
  assert.equal(written, bytes.length)
  assert.deepEqual(await Deno.readFile(`${dir}/out`), bytes)
  const info = await Deno.stat(`${dir}/out`)
  assert.ok((info.blocks ?? 0) * 512 < 1024 * 1024, `${info.blocks} blocks allocated`)
  // The file must not exist yet: a sink never writes over another process's file.
  await runFailure(
    Stream.run(Stream.make(new Uint8Array(1)), sparseFile(`${dir}/out`)).pipe(
      Effect.provide(NodeContext.layer),
    ),
  )
  await Deno.remove(dir, { recursive: true })
})

Deno.test("compression is told by magic bytes", () => {
  assert.equal(sniffCompression(new Uint8Array([0x1f, 0x8b, 8])), "gzip")
  assert.equal(sniffCompression(new TextEncoder().encode("BZh9")), "bzip2")
  assert.equal(sniffCompression(new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0])), "xz")
  assert.equal(sniffCompression(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd])), "zstd")
  assert.equal(sniffCompression(new TextEncoder().encode("QFI\xfb")), undefined)
  assert.equal(sniffCompression(new Uint8Array([0x1f])), undefined)
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

Deno.test("qemu-img's progress meter is read whatever the pieces its output comes in", () => {
  const text = "    (0.00/100%)\r    (1.17/100%)\r    (42.50/100%)\r    (100.00/100%)\r"
  const whole = progressMeter()
  assert.equal(whole(text), 1)
  for (const cut of [1, 5, 9, 16, 17, 30, 47]) {
    const meter = progressMeter()
    const first = meter(text.slice(0, cut))
    const rest = meter(text.slice(cut))
    assert.equal(rest, 1, `cut at ${cut}`)
    if (first !== undefined) assert.ok(first <= 0.425, `cut at ${cut}: ${first}`)
  }
  const meter = progressMeter()
  assert.equal(meter("    (42.5"), undefined)
  assert.equal(meter("0/100%)\r"), 0.425)
  assert.equal(meter("qemu-img: nothing of a meter\n"), undefined)
})

Deno.test("store errors keep their tag and message through JSON", () => {
  const errors: ReadonlyArray<StoreError> = [
    new ChecksumMismatch({
      image: "a",
      source: "http://x/a.img",
      algorithm: "sha256",
      expected: "00",
      actual: "11",
    }),
    new TransferIncomplete({ image: "a", source: "http://x/a.img", received: 5, expected: 9 }),
    new StoreIoError({
      operation: "remove",
      image: "a",
      path: "/store/a",
      cause: new SystemError({
        reason: "PermissionDenied",
        module: "FileSystem",
        method: "remove",
        description: "EACCES: permission denied, rm '/store/a'",
      }),
    }),
  ]
  const json = JSON.stringify(errors.map((error) => Schema.encodeSync(StoreError)(error)))
  const decoded = Schema.decodeUnknownSync(Schema.Array(StoreError))(JSON.parse(json))
  assert.deepEqual(decoded.map((error) => error._tag), [
    "ChecksumMismatch",
    "TransferIncomplete",
    "StoreIoError",
  ])
  assert.deepEqual(decoded.slice(0, 2).map((error) => error.message), [
    "Checksum mismatch for http://x/a.img: expected sha256 00, got 11",
    "Cannot fetch http://x/a.img: the transfer ended after 5 of 9 bytes",
  ])
  // In the process a platform error reads as the OS puts it; decoded, as its whole message.
  assert.equal(
    errors[2]?.message,
    "Cannot remove image 'a': EACCES: permission denied, rm '/store/a'",
  )
  assert.match(decoded[2]?.message ?? "", /^Cannot remove image 'a': .*EACCES: permission denied/)
})
