/**
 * Whole builds against the memory layers: an Imagefile text, a build context as a tree, and a
 * MemoryWorld to assert on afterwards.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { build, type BuildOptions } from "../../src/app/build.ts"
import { analyzeImagefile, hasErrors, renderDiagnostics } from "../../src/domain/imagefile/mod.ts"
import { planBuild } from "../../src/domain/plan.ts"
import { BuildContextMemory } from "../../src/layers/memory/build_context_memory.ts"
import { BuildVmMemory } from "../../src/layers/memory/build_vm_memory.ts"
import {
  ContainerImagesMemory,
  MemoryContainerImages,
} from "../../src/layers/memory/container_images_memory.ts"
import { DiskImagesMemory } from "../../src/layers/memory/disk_images_memory.ts"
import {
  ImageStoreMemory,
  type ImageStoreMemoryOptions,
} from "../../src/layers/memory/image_store_memory.ts"
import { LayerCacheWithRegistry } from "../../src/layers/cache/layer_cache_with_registry.ts"
import { LayerCacheMemory } from "../../src/layers/memory/layer_cache_memory.ts"
import type { Registry } from "../../src/services/registry.ts"
import { WorldFileSystem } from "../support/world_files.ts"
import { ReporterMemory, ReportLog } from "../../src/layers/memory/reporter_memory.ts"
import { newTree, put, type SimTree } from "../../src/layers/memory/sim_fs.ts"
import { MemoryWorld } from "../../src/layers/memory/world.ts"

const encoder = new TextEncoder()

/** A build context from `{ "path": "content" | { mode, content } | { symlink } | { dir } }`. */
export type ContextSpec = Record<
  string,
  string | Uint8Array | { content: string | Uint8Array; mode: number } | { symlink: string } | {
    dir: true
    mode?: number
  }
>

export const contextTree = (spec: ContextSpec): SimTree => {
  const tree = newTree()
  for (const [path, value] of Object.entries(spec)) {
    const owner = { uid: 1000, gid: 1000 }
    const full = `/${path}`
    if (typeof value === "string" || value instanceof Uint8Array) {
      const content = typeof value === "string" ? encoder.encode(value) : value
      put(tree, full, { kind: "file", content, mode: 0o644, ...owner })
    } else if ("symlink" in value) {
      put(tree, full, { kind: "symlink", target: value.symlink, mode: 0o777, ...owner })
    } else if ("dir" in value) {
      put(tree, full, { kind: "directory", mode: value.mode ?? 0o755, ...owner })
    } else {
      const content = typeof value.content === "string"
        ? encoder.encode(value.content)
        : value.content
      put(tree, full, { kind: "file", content, mode: value.mode, ...owner })
    }
  }
  return tree
}

/** A plain tar of the given files, made by the host's tar. */
export const makeTar = async (
  files: Record<string, string>,
  options: { readonly gzip?: boolean } = {},
): Promise<Uint8Array> => {
  const dir = await Deno.makeTempDir()
  try {
    for (const [path, content] of Object.entries(files)) {
      const full = `${dir}/${path}`
      await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true })
      await Deno.writeTextFile(full, content)
    }
    const args = [options.gzip ? "-czf" : "-cf", "-", "--sort=name", "-C", dir, "."]
    const { success, stdout } = await new Deno.Command("tar", { args, stdout: "piped" }).output()
    if (!success) throw new Error("tar failed")
    return stdout
  } finally {
    await Deno.remove(dir, { recursive: true })
  }
}

export interface Harness {
  readonly world: MemoryWorld
  /** BUILD_DIR: tests may change it between builds. */
  readonly tree: SimTree
  readonly report: ReportLog
  /** The container images ADD can name. */
  readonly containerImages: MemoryContainerImages
  readonly layer: Layer.Layer<
    | import("../../src/services/build_vm.ts").BuildVm
    | import("../../src/services/disk_images.ts").DiskImages
    | import("../../src/services/image_store.ts").ImageStore
    | import("../../src/services/build_context.ts").BuildContext
    | import("../../src/services/reporter.ts").Reporter
    | import("../../src/services/layer_cache.ts").LayerCache
    | import("../../src/services/container_images.ts").ContainerImages
  >
}

export const harness = (
  context: ContextSpec = {},
  world = new MemoryWorld(),
  store: ImageStoreMemoryOptions = {},
): Harness => {
  const report = new ReportLog()
  const tree = contextTree(context)
  const contextLayer = BuildContextMemory(tree)
  const containerImages = new MemoryContainerImages()
  const layer = Layer.mergeAll(
    ContainerImagesMemory(containerImages),
    BuildVmMemory(world).pipe(Layer.provide(contextLayer)),
    contextLayer,
    DiskImagesMemory(world),
    ImageStoreMemory(world, store),
    LayerCacheMemory(world).pipe(Layer.provide(ReporterMemory(report))),
    ReporterMemory(report),
  )
  return { world, tree, report, containerImages, layer }
}

export const defaultOptions = (
  name: string,
  overrides: Partial<BuildOptions> = {},
): BuildOptions => ({
  target: { _tag: "Store", name },
  force: false,
  useCache: true,
  interactive: false,
  vm: {
    context: "/context",
    network: true,
    accel: "tcg",
    cpus: 1,
    memoryMiB: 512,
    bootTimeoutSeconds: 30,
  },
  ...overrides,
})

/** Parse, validate and plan `text`; throws with the rendered diagnostics if it is invalid. */
export const planOf = (text: string) => {
  const { imagefile, diagnostics } = analyzeImagefile(text, "Imagefile")
  if (hasErrors(diagnostics)) throw new Error(renderDiagnostics(diagnostics, text))
  return planBuild(imagefile)
}

export const runBuild = (
  h: Harness,
  text: string,
  options: BuildOptions,
): Promise<Exit.Exit<Effect.Effect.Success<ReturnType<typeof build>>, unknown>> =>
  Effect.runPromiseExit(build(planOf(text), options).pipe(Effect.provide(h.layer)))

/**
 * `h`'s services with `--cache-from references`: its memory step cache behind the registries that
 * `registry` serves (the host's HTTP client and files under it; the world's files for the
 * cache's own work).
 */
export const withCacheFrom = <E>(
  h: Harness,
  references: ReadonlyArray<string>,
  registry: Layer.Layer<
    Registry,
    E,
    HttpClient.HttpClient | FileSystem.FileSystem | CommandExecutor.CommandExecutor
  >,
) =>
  Layer.merge(
    h.layer,
    LayerCacheWithRegistry(references).pipe(
      Layer.provide(
        Layer.mergeAll(
          // The host's services first: the world's FileSystem replaces the host's.
          NodeContext.layer,
          FetchHttpClient.layer,
          LayerCacheMemory(h.world).pipe(Layer.provide(ReporterMemory(h.report))),
          DiskImagesMemory(h.world),
          ReporterMemory(h.report),
          registry.pipe(Layer.provide(Layer.merge(NodeContext.layer, FetchHttpClient.layer))),
          WorldFileSystem(h.world),
        ),
      ),
    ),
  )
