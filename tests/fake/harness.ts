/**
 * Whole builds against the memory layers: an Imagefile text, a build context as a tree, and a
 * MemoryWorld to assert on afterwards.
 */
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { build, type BuildOptions } from "../../src/app/build.ts"
import { analyzeImagefile, hasErrors, renderDiagnostics } from "../../src/domain/imagefile/mod.ts"
import { planBuild } from "../../src/domain/plan.ts"
import { BuildContextMemory } from "../../src/layers/memory/build_context_memory.ts"
import { BuildVmMemory } from "../../src/layers/memory/build_vm_memory.ts"
import { DiskImagesMemory } from "../../src/layers/memory/disk_images_memory.ts"
import {
  ImageStoreMemory,
  type ImageStoreMemoryOptions,
} from "../../src/layers/memory/image_store_memory.ts"
import { LayerCacheMemory } from "../../src/layers/memory/layer_cache_memory.ts"
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
  readonly layer: Layer.Layer<
    | import("../../src/services/build_vm.ts").BuildVm
    | import("../../src/services/disk_images.ts").DiskImages
    | import("../../src/services/image_store.ts").ImageStore
    | import("../../src/services/build_context.ts").BuildContext
    | import("../../src/services/reporter.ts").Reporter
    | import("../../src/services/layer_cache.ts").LayerCache
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
  const layer = Layer.mergeAll(
    BuildVmMemory(world).pipe(Layer.provide(contextLayer)),
    contextLayer,
    DiskImagesMemory(world),
    ImageStoreMemory(world, store),
    LayerCacheMemory(world).pipe(Layer.provide(ReporterMemory(report))),
    ReporterMemory(report),
  )
  return { world, tree, report, layer }
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
