/**
 * The directory step cache over real files: a layer file cut short (a full disk, a cache copied
 * half-way) is a miss with a warning and is removed, never served; kept again, it counts again.
 */
import assert from "node:assert/strict"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { LayerCacheDirectory } from "../../src/layers/cache/layer_cache_directory.ts"
import { DiskImagesQemu } from "../../src/layers/qemu/disk_images_qemu.ts"
import { DiskImages } from "../../src/services/disk_images.ts"
import { LayerCache } from "../../src/services/layer_cache.ts"
import { runTest } from "../support/effect.ts"
import { tool } from "../support/host_tool.ts"
import { warningsReporter } from "../support/warnings_reporter.ts"

Deno.test("a truncated layer is a miss with a warning, removed, and counts once kept again", async () => {
  const root = await Deno.makeTempDir({ prefix: "cache-truncated-" })
  const warnings: Array<string> = []
  try {
    await runTest(
      Effect.gen(function* () {
        const cache = yield* LayerCache
        const disks = yield* DiskImages
        const workspace = yield* cache.workspace
        const A = "a".repeat(64)
        const write = Effect.gen(function* () {
          const path = `${workspace}/${crypto.randomUUID()}.qcow2`
          yield* disks.create({ path, sizeBytes: 4 * 1024 * 1024 })
          // Some data, so that the file has clusters past its header to lose.
          yield* Effect.promise(() =>
            tool("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", path)
          )
          return [{ key: A, text: "RUN a", path }]
        })
        const [kept] = yield* cache.keep(undefined, yield* write, { replace: false })
        assert.ok(kept)
        const size = (yield* Effect.promise(() => Deno.stat(kept.path))).size
        yield* Effect.promise(async () => {
          await Deno.chmod(kept.path, 0o644)
          await Deno.truncate(kept.path, Math.floor(size / 2))
        })
        assert.deepEqual(yield* Effect.scoped(cache.hits([A])), [])
        assert.equal(warnings.length, 1)
        assert.match(warnings[0] ?? "", /its file is not the one it was kept with/)
        yield* Effect.promise(() =>
          Deno.stat(kept.path).then(
            () => assert.fail("the truncated file is still there"),
            () => {},
          )
        )
        assert.deepEqual(yield* cache.list, [])
        const again = yield* cache.keep(undefined, yield* write, { replace: false })
        assert.equal((yield* Effect.scoped(cache.hits([A]))).length, 1)
        assert.equal(again[0]?.digest, kept.digest, "the same bytes, the same digest")
      }).pipe(
        Effect.scoped,
        Effect.provide(
          Layer.provideMerge(LayerCacheDirectory(root), DiskImagesQemu).pipe(
            Layer.provide(
              Layer.merge(NodeContext.layer, warningsReporter((message) => warnings.push(message))),
            ),
          ),
        ),
      ),
    )
  } finally {
    await Deno.remove(root, { recursive: true })
  }
})
