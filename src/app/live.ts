/**
 * The live wiring: every real implementation of the ports, assembled here and only here, over
 * the platform that main.ts provides (files, processes, HTTP, the terminal). Where things are
 * comes from the environment through Config (src/app/settings.ts), read by the layers below.
 * Commands take the layer they need and provide it to their use case.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import { BuildContextDirectory } from "../layers/build_context_directory.ts"
import { LayerCacheDirectory } from "../layers/cache/layer_cache_directory.ts"
import {
  BuildVmDryRun,
  DiskImagesDryRun,
  ImageStoreDryRun,
  LayerCacheDryRun,
} from "../layers/dry_run.ts"
import { makeBuildVmQemu } from "../layers/qemu/build_vm_qemu.ts"
import { DiskImagesQemu } from "../layers/qemu/disk_images_qemu.ts"
import { findGuestArtifacts } from "../layers/qemu/guest_artifacts.ts"
import { HelperVmStatesDirectory } from "../layers/qemu/helper_vm_states_directory.ts"
import { statesIn } from "../layers/qemu/vm_state.ts"
import { VmRunnerQemu } from "../layers/qemu/vm_runner_qemu.ts"
import { LayerCacheWithRegistry } from "../layers/cache/layer_cache_with_registry.ts"
import { ContainerImagesLive } from "../layers/container/container_images_live.ts"
import { RegistryHttp } from "../layers/registry/registry_http.ts"
import { ReporterConsole } from "../layers/reporter/reporter_console.ts"
import { ImageStoreDirectory } from "../layers/store/image_store_directory.ts"
import { TerminalDeno } from "../layers/terminal_deno.ts"
import type { ProgressMode } from "../services/reporter.ts"
import { cacheDirectorySetting, imageBackendDirectory } from "./settings.ts"

/** What every command runs on: files, paths, processes, HTTP and the terminal. */
export const platformLive = Layer.mergeAll(NodeContext.layer, FetchHttpClient.layer, TerminalDeno)

export interface StoreRequest {
  /** `--image-backend`, else the setting. */
  readonly backend: Option.Option<string>
  readonly progress: ProgressMode
  /** The most bytes a pulled image may have once decompressed. */
  readonly maxImageBytes?: number
  /** `--plain-http`: speak plain HTTP to registries. */
  readonly plainHttp?: boolean
}

/**
 * The image store, with the disk tools and the registries it needs (which `image push` uses
 * too), reporting in `progress` mode.
 */
export const storeLive = (request: StoreRequest) =>
  Layer.unwrapEffect(
    Effect.map(imageBackendDirectory(request.backend), (directory) =>
      Layer.provideMerge(
        ImageStoreDirectory(
          directory,
          request.maxImageBytes === undefined ? {} : { maxImageBytes: request.maxImageBytes },
        ),
        Layer.mergeAll(
          DiskImagesQemu,
          ReporterConsole(request.progress),
          RegistryHttp(request.plainHttp ?? false),
        ),
      )),
  )

/** The cache directory's setting, a defect if it cannot be read (it always can: a string). */
const cacheDirectory = Effect.orDie(cacheDirectorySetting)

/** The step cache. */
const layerCacheLive = Layer.unwrapEffect(
  Effect.map(
    cacheDirectory,
    (directory) => LayerCacheDirectory(directory).pipe(Layer.provide(DiskImagesQemu)),
  ),
)

/** The helper VM's saved states beside the step cache. */
const statesLive = Layer.unwrapEffect(Effect.map(cacheDirectory, HelperVmStatesDirectory))

/** The step cache and the helper VM's saved states beside it. */
export const cacheLive = Layer.merge(
  // Listing and pruning use no layer, so warn of none: any reporter does.
  layerCacheLive.pipe(Layer.provide(ReporterConsole("plain"))),
  statesLive,
)

/** The helper VM over QEMU, its saved states in the cache directory (`helper-vm/`). */
const helperVmLive = Layer.unwrapEffect(
  Effect.map(
    cacheDirectory,
    (directory) => makeBuildVmQemu(findGuestArtifacts(), { stateDirectory: statesIn(directory) }),
  ),
)

/** `transient run`: QEMU with its disk tools. */
export const runnerLive = VmRunnerQemu.pipe(Layer.provide(DiskImagesQemu))

export interface BuildRequest {
  readonly buildDir: string
  readonly backend: Option.Option<string>
  readonly progress: ProgressMode
  readonly dryRun: boolean
  readonly plainHttp: boolean
  /** Registry references to take missing step layers from. */
  readonly cacheFrom: ReadonlyArray<string>
}

/** Every service of a build, or of its dry run (which starts nothing and writes nothing). */
export const buildLive = (request: BuildRequest) => {
  const reporter = ReporterConsole(request.progress)
  const registry = RegistryHttp(request.plainHttp)
  const store = Layer.unwrapEffect(
    Effect.map(
      imageBackendDirectory(request.backend),
      (directory) => ImageStoreDirectory(directory),
    ),
  ).pipe(Layer.provide(Layer.merge(DiskImagesQemu, registry)))
  const layerCache = request.cacheFrom.length === 0
    ? layerCacheLive
    : LayerCacheWithRegistry(request.cacheFrom).pipe(
      Layer.provide(Layer.mergeAll(layerCacheLive, DiskImagesQemu, registry)),
    )
  const cache = Layer.merge(layerCache, statesLive)
  const services = request.dryRun
    ? Layer.mergeAll(
      BuildVmDryRun,
      DiskImagesDryRun,
      ImageStoreDryRun.pipe(Layer.provide(store)),
      LayerCacheDryRun,
      statesLive,
    )
    : Layer.mergeAll(helperVmLive, DiskImagesQemu, store, cache)
  // The registries again for `--cache-to`, which pushes after the build, and for ADD's
  // container images.
  return Layer.mergeAll(
    services.pipe(Layer.provide(reporter)),
    registry,
    ContainerImagesLive.pipe(Layer.provide(registry)),
    BuildContextDirectory(request.buildDir),
    reporter,
  )
}
