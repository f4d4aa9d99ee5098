/**
 * `transient build` (and its older spelling `transient image build`): build an image from an
 * Imagefile in a helper VM, or describe the build with `--dry-run`.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import { build, type BuildOptions } from "../builder.ts"
import { imageNameProblem, visibleName } from "../domain/image_spec.ts"
import { planBuild } from "../domain/plan.ts"
import { BuildContextDirectory } from "../layers/build_context_directory.ts"
import {
  BuildVmDryRun,
  DiskImagesDryRun,
  ImageStoreDryRun,
  LayerCacheDryRun,
} from "../layers/dry_run.ts"
import { LayerCache } from "../services/layer_cache.ts"
import { cacheLayer } from "./cache_command.ts"
import { pushBuildCache } from "../app/build_cache.ts"
import { LayerCacheWithRegistry } from "../layers/cache/layer_cache_with_registry.ts"
import { RegistryHttp } from "../layers/registry/registry_http.ts"
import { makeBuildVmQemu } from "../layers/qemu/build_vm_qemu.ts"
import { statesIn } from "../layers/qemu/vm_state.ts"
import { findGuestArtifacts } from "../layers/qemu/guest_artifacts.ts"
import { DiskImagesQemu } from "../layers/qemu/disk_images_qemu.ts"
import { ReporterConsole } from "../layers/reporter/reporter_console.ts"
import { ImageStoreDirectory } from "../layers/store/image_store_directory.ts"
import type { PublishTarget } from "../services/image_store.ts"
import { Reporter } from "../services/reporter.ts"
import { Terminal } from "../services/terminal.ts"
import { describeFailure, EXIT_FAILURE, ExitWith } from "./exit.ts"
import { loadImagefile, readImagefile } from "./load_imagefile.ts"
import { createHash } from "node:crypto"
import {
  AtLeastOne,
  backendDirectory,
  cacheDirectory,
  cacheLimit,
  imageBackendOption,
  machineOptions,
  plainHttpOption,
  progressOption,
  validateOptions,
} from "./options.ts"
import { handler, Published, verboseOption } from "./root.ts"

const buildDir = Args.directory({ name: "BUILD_DIR", exists: "yes" }).pipe(
  Args.withDescription("The build directory: COPY and ADD sources are relative to it"),
  Args.withDefault("."),
)

const name = Options.text("name").pipe(
  Options.withAlias("n"),
  Options.withDescription("The name of the image to build"),
)

const file = Options.file("file", { exists: "yes" }).pipe(
  Options.withAlias("f"),
  Options.withDescription("The Imagefile (default: BUILD_DIR/Imagefile)"),
  Options.optional,
)

const local = Options.boolean("local").pipe(
  Options.withDescription("Write BUILD_DIR/NAME.qcow2 instead of publishing to the image store"),
)

const force = Options.boolean("force").pipe(
  Options.withDescription("Replace an existing image of the same name"),
)

const dryRun = Options.boolean("dry-run").pipe(
  Options.withDescription(
    "Check the sources and the base image, and print what each step would do; start no VM, " +
      "write nothing",
  ),
)

const { accel, cpus, memory, noNetwork } = machineOptions(
  "the helper VM",
  "RUN cannot download anything",
)

const noCache = Options.boolean("no-cache").pipe(
  Options.withDescription(
    "Run every step instead of reusing the step cache's layers (what runs is still cached)",
  ),
)

const bootTimeout = Options.integer("boot-timeout").pipe(
  Options.withDescription("Seconds to wait for the helper VM to come up"),
  Options.withDefault(60),
)

const cacheFrom = Options.text("cache-from").pipe(
  Options.withPseudoName("REF"),
  Options.withDescription(
    "Before building, take the step layers this build needs and the local step cache lacks from " +
      "the build cache at this registry reference (pushed by --cache-to); may be given more than " +
      "once; a registry that cannot be read is a warning",
  ),
  Options.repeated,
)

const cacheTo = Options.text("cache-to").pipe(
  Options.withPseudoName("REF"),
  Options.withDescription(
    "After building, push the image's step layers to this registry reference (REGISTRY/REPO:TAG) " +
      "as a build cache for --cache-from; layers the registry has are not sent again",
  ),
  Options.optional,
)

const buildOptions = {
  buildDir,
  cacheFrom,
  cacheTo,
  plainHttp: plainHttpOption,
  name,
  file,
  local,
  force,
  dryRun,
  noCache,
  imageBackend: imageBackendOption,
  accel,
  cpus,
  memory,
  noNetwork,
  bootTimeout,
  progress: progressOption,
  verbose: verboseOption,
}

type BuildArgs = Command.Command.ParseConfig<typeof buildOptions>

/** The options that the parser alone cannot check. */
const BuildFlags = Schema.Struct({
  name: Schema.String,
  local: Schema.Boolean,
  cpus: Schema.OptionFromSelf(AtLeastOne("cpus")),
  memory: AtLeastOne("memory"),
  bootTimeout: AtLeastOne("boot-timeout"),
}).pipe(
  Schema.filter(({ name, local }) => {
    const problem = imageNameProblem(name) ??
      (local && name.includes("/") ? "a --local image is a file name: no '/'" : undefined)
    return problem === undefined
      ? true
      : `'${visibleName(name)}' cannot be used as an image name: ${problem}`
  }),
)

/** The helper VM, its saved states in the cache directory (`helper-vm/`). */
const helperVm = Layer.unwrapEffect(
  Effect.map(
    cacheDirectory,
    (directory) => makeBuildVmQemu(findGuestArtifacts(), { stateDirectory: statesIn(directory) }),
  ),
)

/** The live services of a build, or of its dry run, reporting through `reporter`. */
const buildServices = (args: BuildArgs, backend: string, reporter: Layer.Layer<Reporter>) => {
  const registry = RegistryHttp(args.plainHttp)
  const store = ImageStoreDirectory(backend).pipe(
    Layer.provide(Layer.merge(DiskImagesQemu, registry)),
  )
  const services = args.dryRun
    ? Layer.mergeAll(
      BuildVmDryRun,
      DiskImagesDryRun,
      ImageStoreDryRun.pipe(Layer.provide(store)),
      LayerCacheDryRun,
    )
    : Layer.mergeAll(
      helperVm,
      DiskImagesQemu,
      store,
      args.cacheFrom.length === 0 ? cacheLayer : LayerCacheWithRegistry(args.cacheFrom).pipe(
        Layer.provide(Layer.mergeAll(cacheLayer, DiskImagesQemu, registry)),
      ),
    )
  return Layer.mergeAll(
    services.pipe(Layer.provide(reporter)),
    registry,
    BuildContextDirectory(args.buildDir),
    reporter,
  )
}

const runBuild = handler(
  Effect.fn("cli.build")(function* (args: BuildArgs) {
    yield* validateOptions(BuildFlags, args)
    const imagefilePath = Option.getOrElse(args.file, () => `${args.buildDir}/Imagefile`)
    const imagefile = yield* loadImagefile(imagefilePath)
    const imagefileDigest = yield* readImagefile(imagefilePath).pipe(
      Effect.map((text) => `sha256:${createHash("sha256").update(text).digest("hex")}`),
      Effect.option,
    )
    const target: PublishTarget = args.local
      ? { _tag: "Local", name: args.name, path: `${args.buildDir}/${args.name}.qcow2` }
      : { _tag: "Store", name: args.name }
    const terminal = yield* Terminal
    const published = yield* Published
    const options: BuildOptions = {
      target,
      force: args.force,
      useCache: !args.noCache,
      interactive: terminal.interactive,
      ...(Option.isSome(imagefileDigest) ? { imagefileDigest: imagefileDigest.value } : {}),
      ...(args.dryRun ? {} : { onPublished: () => Ref.set(published, true) }),
      vm: {
        context: args.buildDir,
        network: !args.noNetwork,
        accel: args.accel,
        ...(Option.isSome(args.cpus) ? { cpus: args.cpus.value } : {}),
        memoryMiB: args.memory,
        bootTimeoutSeconds: args.bootTimeout,
      },
    }
    const backend = yield* backendDirectory(args.imageBackend)
    const keepBytes = yield* cacheLimit

    yield* Effect.gen(function* () {
      const reporter = yield* Reporter
      const result = yield* build(planBuild(imagefile), options).pipe(
        Effect.tapError((error) => reporter.failure(describeFailure(error), error._tag)),
        Effect.mapError(() => new ExitWith({ code: EXIT_FAILURE })),
      )
      if (args.dryRun) {
        yield* reporter.info(`Dry run: nothing was built; the image would be ${result.image.path}`)
        return
      }
      if (Option.isSome(args.cacheTo)) {
        // The image is built: a cache that cannot be pushed is a warning.
        yield* pushBuildCache(args.cacheTo.value, result.layers)
          .pipe(
            Effect.catchAll((error) =>
              reporter.warn(
                `The build cache was not pushed to ${
                  args.cacheTo.pipe(Option.getOrElse(() => ""))
                }: ${error.message}`,
              )
            ),
          )
      }
      yield* reporter.result({
        name: result.image.name,
        path: result.image.path,
        virtualSize: result.image.virtualSize,
        actualSize: result.image.actualSize,
        durationMs: result.durationMs,
        steps: result.steps,
      })
      // The cache's size limit, least recently used layers first; a failure only warns.
      const cache = yield* LayerCache
      yield* cache.prune({ all: false, keepBytes }).pipe(
        Effect.catchAll((error) =>
          reporter.warn(`The step cache was not pruned: ${error.message}`)
        ),
      )
    }).pipe(Effect.provide(buildServices(args, backend, ReporterConsole(args.progress))))
  }),
)

const describeBuild = (command: string) =>
  "Build a qcow2 image from BUILD_DIR/Imagefile inside a helper VM, then publish it to the " +
  "image store (or to BUILD_DIR/NAME.qcow2 with --local).\n\n" +
  `Example: ${command} --name web --accel tcg ./web`

export const buildCommand = Command.make("build", buildOptions, runBuild).pipe(
  Command.withDescription(describeBuild("transient build")),
)

/** `transient image build`: the older spelling of `transient build`. */
export const imageBuildCommand = Command.make("build", buildOptions, runBuild).pipe(
  Command.withDescription(describeBuild("transient image build")),
)
