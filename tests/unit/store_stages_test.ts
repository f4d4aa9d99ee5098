/**
 * The store's pipeline stages on their own (tar extraction, the sparse sink, magic sniffing) and
 * its errors as values: tags to branch on, messages that survive the JSON boundary.
 */
import assert from "node:assert/strict"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { SystemError } from "@effect/platform/Error"
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
import { sparseFile } from "../../src/layers/store/sparse_file.ts"
import { extractBoxImage } from "../support/box_image.ts"
import { chunked } from "../support/bytes.ts"
import { runFailure, runTest } from "../support/effect.ts"

Deno.test("a pax record that claims gigabytes is refused, not allocated", async () => {
  // One header of type 'x' (pax) whose size field says 8 GiB - 1.
  const header = new Uint8Array(512)
  header.set(new TextEncoder().encode("PaxHeaders/box.img"), 0)
  header.set(new TextEncoder().encode("77777777777\0"), 124)
  header[156] = "x".charCodeAt(0)
  assert.match(String(await runFailure(extractBoxImage(header, 512))), /Oversized/)
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
