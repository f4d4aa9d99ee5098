/**
 * `transient build` (and its older spelling `transient image build`): build an image from an
 * Imagefile in a helper VM, or describe the build with `--dry-run`.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import type { BuildOptions } from "../app/build.ts"
import { buildImage } from "../app/build_image.ts"
import type { ExportTarget } from "../app/export_image.ts"
import { FORMAT_EXTENSION } from "../domain/export_format.ts"
import { imageNameProblem } from "../domain/image_spec.ts"
import { DEFAULT_PLATFORM, parsePlatform } from "../domain/platform.ts"
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
import { usage } from "./usage.ts"
import { exportFormatOption, OVA_DEFAULT_CPUS, vmdkSubformatOption } from "./export_command.ts"

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
  Options.withDescription("Write BUILD_DIR/NAME.EXT (per --format) instead of publishing"),
)

const formats = exportFormatOption.pipe(
  Options.withDescription("With --local, an image export format (default: qcow2)"),
  Options.repeated,
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
  Options.withDescription("Take missing step layers from this registry cache"),
  Options.repeated,
)

const cacheTo = Options.text("cache-to").pipe(
  Options.withPseudoName("REF"),
  Options.withDescription("Push the step layers to REF (REGISTRY/REPO:TAG), for --cache-from"),
  Options.optional,
)

const platform = Options.text("platform").pipe(
  Options.withPseudoName("OS/ARCH"),
  // OS/ARCH/VARIANT too (linux/arm/v7).
  Options.withDescription("ADD's entry of a multi-platform image (default: linux/amd64)"),
  Options.optional,
)

const buildOptions = {
  buildDir,
  name,
  file,
  local,
  formats,
  vmdkSubformat: vmdkSubformatOption,
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
  platform,
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

/**
 * What a build writes: the qcow2 (in the store, or BUILD_DIR/NAME.qcow2 with --local) and, with
 * --local, each other --format as BUILD_DIR/NAME.EXT; the qcow2 is then kept only if asked for.
 * The store keeps qcow2 alone: another format without --local is a usage error.
 */
const buildOutputOrUsage = (args: BuildArgs) =>
  Effect.gen(function* () {
    const asked = args.formats.length === 0 ? ["qcow2" as const] : [...new Set(args.formats)]
    const others = asked.filter((format) => format !== "qcow2")
    const [first] = others
    if (!args.local && first !== undefined) {
      return yield* usage(
        `--format ${first}: the store keeps qcow2 images; write BUILD_DIR/${args.name}.` +
          `${FORMAT_EXTENSION[first]} with --local, or build, then run ` +
          `'transient image export ${args.name} PATH'`,
      )
    }
    if (Option.isSome(args.vmdkSubformat) && !others.includes("vmdk")) {
      return yield* usage("--vmdk-subformat applies to --format vmdk only")
    }
    const extensions = others.map((format) => FORMAT_EXTENSION[format])
    const twice = extensions.find((extension, index) => extensions.indexOf(extension) !== index)
    if (twice !== undefined) return yield* usage(`two formats would both write NAME.${twice}`)
    const discardImage = !asked.includes("qcow2")
    const machine = {
      cpus: Option.getOrElse(args.cpus, () => OVA_DEFAULT_CPUS),
      memoryMiB: args.memory,
    }
    const exports: ReadonlyArray<ExportTarget> = others.map((format) => ({
      path: `${args.buildDir}/${args.name}.${FORMAT_EXTENSION[format]}`,
      format,
      machine,
      ...(format === "vmdk" && Option.isSome(args.vmdkSubformat)
        ? { vmdkSubformat: args.vmdkSubformat.value }
        : {}),
    }))
    return {
      imagePath: discardImage
        ? `${args.buildDir}/.${args.name}.build.qcow2`
        : `${args.buildDir}/${args.name}.qcow2`,
      exports,
      discardImage,
    }
  })

const runBuild = handler(
  Effect.fn("cli.build")(function* (args: BuildArgs) {
    yield* validateOptions(BuildFlags, args)
    const output = yield* buildOutputOrUsage(args)
    const buildPlatform = Option.isNone(args.platform)
      ? DEFAULT_PLATFORM
      : yield* Either.match(parsePlatform(args.platform.value), {
        onLeft: (problem) => usage(`--platform: ${problem}`),
        onRight: Effect.succeed,
      })
    const imagefilePath = Option.getOrElse(args.file, () => `${args.buildDir}/Imagefile`)
    const { imagefile, digest: imagefileDigest } = yield* loadImagefile(imagefilePath)
    const target: PublishTarget = args.local
      ? { _tag: "Local", name: args.name, path: output.imagePath }
      : { _tag: "Store", name: args.name }
    const terminal = yield* Terminal
    const published = yield* Published
    const options: BuildOptions = {
      target,
      // The qcow2 that only the exports are made from is the build's own: replaced at will.
      force: args.force || output.discardImage,
      useCache: !args.noCache,
      platform: buildPlatform,
      interactive: terminal.interactive,
      imagefileDigest,
      // With exports to write, publishing the qcow2 is not yet success.
      ...(args.dryRun || output.exports.length > 0
        ? {}
        : { onPublished: () => Ref.set(published, true) }),
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
        exports: output.exports,
        replaceExports: args.force,
        discardImage: output.discardImage,
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
    details: [
      "The image goes to the image store, or to BUILD_DIR/NAME.EXT with --local (see --format).",
    ],
    examples: [
      `${command} --name web ./web`,
      `${command} --name web --local --format vhd --format ova --accel tcg ./web`,
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
