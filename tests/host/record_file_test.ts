/**
 * Records that are not small regular files: a FIFO, a symlink to /dev/zero, one too large. Each
 * is refused at once, and the step cache treats such a record as missing instead of waiting
 * forever or reading until memory runs out.
 */
import assert from "node:assert/strict"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { warningsReporter } from "../support/warnings_reporter.ts"
import { LayerCacheDirectory } from "../../src/layers/cache/layer_cache_directory.ts"
import { DiskImagesQemu } from "../../src/layers/qemu/disk_images_qemu.ts"
import { readRecordFile } from "../../src/layers/record_file.ts"
import { LayerCache } from "../../src/services/layer_cache.ts"
import { runTest } from "../support/effect.ts"

const read = (path: string, max?: number) =>
  Effect.runPromise(Effect.either(readRecordFile(path, max)))

const mkfifo = async (path: string) => {
  const made = await new Deno.Command("mkfifo", { args: [path] }).output()
  assert.ok(made.success, "mkfifo")
}

Deno.test("a record is read only from a small regular file, never through a link or a FIFO", async () => {
  const dir = await Deno.makeTempDir()
  try {
    await Deno.writeTextFile(`${dir}/ok.json`, '{"key":"x"}')
    assert.deepEqual(await read(`${dir}/ok.json`), Either.right('{"key":"x"}'))

    await mkfifo(`${dir}/fifo.json`)
    const fifo = await read(`${dir}/fifo.json`)
    assert.ok(Either.isLeft(fifo) && fifo.left.reason === "it is not a regular file")

    await Deno.symlink("/dev/zero", `${dir}/zero.json`)
    const zero = await read(`${dir}/zero.json`)
    assert.ok(Either.isLeft(zero), "a symlink is not followed")

    await Deno.writeTextFile(`${dir}/big.json`, "x".repeat(100))
    const big = await read(`${dir}/big.json`, 99)
    assert.ok(Either.isLeft(big) && big.left.reason === "it is larger than 99 bytes")
    assert.ok(Either.isLeft(await read(`${dir}/missing.json`)))
  } finally {
    await Deno.remove(dir, { recursive: true })
  }
})

Deno.test("the step cache takes a FIFO or /dev/zero record for a missing one", () =>
  runTest(Effect.gen(function* () {
    const dir = yield* Effect.promise(() => Deno.makeTempDir())
    const key = (c: string) => c.repeat(64)
    yield* Effect.promise(async () => {
      await Deno.mkdir(`${dir}/layers`, { recursive: true })
      await mkfifo(`${dir}/layers/${key("a")}.json`)
      await Deno.writeFile(`${dir}/layers/${key("a")}.qcow2`, new Uint8Array())
      await Deno.symlink("/dev/zero", `${dir}/layers/${key("b")}.json`)
      await Deno.writeFile(`${dir}/layers/${key("b")}.qcow2`, new Uint8Array())
    })
    const [hits, listed] = yield* Effect.flatMap(
      LayerCache,
      (cache) => Effect.zip(cache.hits([key("a")]), cache.list),
    ).pipe(
      Effect.scoped,
      Effect.provide(LayerCacheDirectory(dir)),
      Effect.provide(DiskImagesQemu),
      Effect.provide(NodeContext.layer),
      Effect.provide(warningsReporter(() => {})),
      Effect.timeout("20 seconds"),
    )
    assert.deepEqual(hits, [])
    assert.deepEqual(listed, [])
    yield* Effect.promise(() => Deno.remove(dir, { recursive: true }))
  })))
