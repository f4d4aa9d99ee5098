/**
 * A process that owns a path and holds it until it is killed, as a running build does:
 *
 *   deno run -A hold_owned.ts path DIR        owns DIR (made as a directory) via ownedPath
 *   deno run -A hold_owned.ts workspace CACHE takes a workspace of the step cache at CACHE
 *
 * It prints the path it holds on a line once it holds it.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { LayerCacheDirectory } from "../../src/layers/cache/layer_cache_directory.ts"
import { DiskImagesQemu } from "../../src/layers/qemu/disk_images_qemu.ts"
import { ownedPath } from "../../src/layers/stale_files.ts"
import { LayerCache } from "../../src/services/layer_cache.ts"
import { warningsReporter } from "./warnings_reporter.ts"

const [mode, at] = Deno.args
if (at === undefined || (mode !== "path" && mode !== "workspace")) {
  throw new Error("usage: hold_owned.ts path DIR | workspace CACHE")
}

const held = mode === "path"
  ? Effect.tap(
    ownedPath(at),
    (dir) => Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeDirectory(dir)),
  ).pipe(Effect.orDie)
  : Effect.flatMap(LayerCache, (cache) => cache.workspace).pipe(
    Effect.provide(
      LayerCacheDirectory(at).pipe(
        Layer.provide(Layer.merge(DiskImagesQemu, warningsReporter(() => {}))),
      ),
    ),
    Effect.orDie,
  )

await Effect.runPromise(
  held.pipe(
    Effect.tap((path) => Effect.sync(() => console.log(path))),
    Effect.zipRight(Effect.never),
    Effect.scoped,
    Effect.provide(NodeContext.layer),
  ),
)
