/**
 * `transient build` (and its older spelling `transient image build`): build an image from an
 * Imagefile in a helper VM, or describe the build with `--dry-run`.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import type { BuildOptions } from "../app/build.ts"
import { buildImage } from "../app/build_image.ts"
import { imageNameProblem } from "../domain/image_spec.ts"
import { visibleName } from "../domain/visible_name.ts"
import { buildLive } from "../app/live.ts"
import type { PublishTarget } from "../services/image_store.ts"
import { Reporter } from "../services/reporter.ts"
import { Terminal } from "../services/terminal.ts"
import { describeFailure, EXIT_FAILURE, ExitWith } from "./exit.ts"
import { commandDescription } from "./help.ts"
import { loadImagefile } from "../app/load_imagefile.ts"
import {
  AtLeastOne,
  cacheSizeLimitOrUsage,
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
  Options.withDescription("Write BUILD_DIR/NAME.qcow2 instead of publishing to the store"),
)

const force = Options.boolean("force").pipe(
  Options.withDescription("Replace an existing image of the same name"),
)

const dryRun = Options.boolean("dry-run").pipe(
  // The sources and the base image are still checked.
  Options.withDescription("Print what each step would do; start no VM, write nothing"),
)

const { accel, cpus, memory, noNetwork } = machineOptions(
  "the helper VM",
  "RUN cannot download anything",
)

const noCache = Options.boolean("no-cache").pipe(
  // What runs is still cached.
  Options.withDescription("Run every step instead of reusing the step cache's layers"),
)

const bootTimeout = Options.integer("boot-timeout").pipe(
  Options.withPseudoName("SECONDS"),
  Options.withDescription("Seconds to wait for the helper VM to come up"),
  Options.withDefault(60),
)

const cacheFrom = Options.text("cache-from").pipe(
  Options.withPseudoName("REF"),
  // Only layers the local step cache lacks are fetched; a registry that cannot be read warns.
  Options.withDescription("Take missing step layers from this registry build cache"),
  Options.repeated,
)

const cacheTo = Options.text("cache-to").pipe(
  Options.withPseudoName("REF"),
  Options.withDescription("Push the step layers to REF (REGISTRY/REPO:TAG), for --cache-from"),
  Options.optional,
)

const buildOptions = {
  buildDir,
  name,
  file,
  local,
  force,
  dryRun,
  noCache,
  cacheFrom,
  cacheTo,
  plainHttp: plainHttpOption,
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

const runBuild = handler(
  Effect.fn("cli.build")(function* (args: BuildArgs) {
    yield* validateOptions(BuildFlags, args)
    const imagefilePath = Option.getOrElse(args.file, () => `${args.buildDir}/Imagefile`)
    const { imagefile, digest: imagefileDigest } = yield* loadImagefile(imagefilePath)
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
      imagefileDigest,
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
    const keepBytes = yield* cacheSizeLimitOrUsage

    yield* Effect.gen(function* () {
      const reporter = yield* Reporter
      yield* buildImage({
        imagefile,
        options,
        dryRun: args.dryRun,
        keepBytes,
        ...(Option.isSome(args.cacheTo) ? { cacheTo: args.cacheTo.value } : {}),
      }).pipe(
        Effect.tapError((error) => reporter.failure(describeFailure(error), error._tag)),
        Effect.mapError(() => new ExitWith({ code: EXIT_FAILURE })),
      )
    }).pipe(Effect.provide(buildLive({
      buildDir: args.buildDir,
      backend: args.imageBackend,
      progress: args.progress,
      dryRun: args.dryRun,
      plainHttp: args.plainHttp,
      cacheFrom: args.cacheFrom,
    })))
  }),
)

const describeBuild = (command: string) =>
  commandDescription({
    summary: "Build a qcow2 image from an Imagefile inside a helper VM",
    details: ["The image goes to the image store, or to BUILD_DIR/NAME.qcow2 with --local."],
    examples: [
      `${command} --name web ./web`,
      `${command} --name web --local --accel tcg --progress plain ./web`,
      `${command} --name web --cache-from ghcr.io/example/web-cache:main ./web`,
    ],
  })

export const buildCommand = Command.make("build", buildOptions, runBuild).pipe(
  Command.withDescription(describeBuild("transient build")),
)

/** `transient image build`: the older spelling of `transient build`. */
export const imageBuildCommand = Command.make("build", buildOptions, runBuild).pipe(
  Command.withDescription(describeBuild("transient image build")),
)
