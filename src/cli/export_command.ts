/**
 * `transient image export NAME PATH`: write an image from the store (or a qcow2 file) as a
 * raw, VMDK, VHDX, VHD or OVA file for the platform that will run it.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { exportImage } from "../app/export_image.ts"
import { storeLive } from "../app/live.ts"
import {
  EXPORT_FORMATS,
  type ExportFormat,
  exportFormatFor,
  VMDK_SUBFORMATS,
  type VmdkSubformat,
} from "../domain/export_format.ts"
import { Reporter } from "../services/reporter.ts"
import { describeError, EXIT_FAILURE, ExitWith } from "./exit.ts"
import { commandDescription } from "./help.ts"
import { AtLeastOne, imageBackendOption, progressOption, validateOptions } from "./options.ts"
import { handler, verboseOption } from "./root.ts"
import { usage } from "./usage.ts"

/** `--format FORMAT`: one of the export formats (repeated by `build`). */
export const exportFormatOption = Options.choice("format", EXPORT_FORMATS).pipe(
  Options.withPseudoName("FORMAT"),
)

/** `--vmdk-subformat`: streamOptimized for ESXi and OVAs, monolithicSparse for Workstation. */
export const vmdkSubformatOption = Options.choice("vmdk-subformat", VMDK_SUBFORMATS).pipe(
  Options.withPseudoName("KIND"),
  Options.withDescription("streamOptimized (ESXi, default), monolithicSparse (Workstation)"),
  Options.optional,
)

/** The OVA's virtual machine when nothing else says: as `transient run` boots under KVM. */
export const OVA_DEFAULT_CPUS = 2
export const OVA_DEFAULT_MEMORY_MIB = 1024

/**
 * The format for `path`, or a usage error: one that contradicts its extension, or none given
 * for an extension that names none; `--vmdk-subformat` only with a VMDK.
 */
export const exportFormatOrUsage = (
  path: string,
  requested: Option.Option<ExportFormat>,
  subformat: Option.Option<VmdkSubformat>,
) =>
  Effect.gen(function* () {
    const found = exportFormatFor(path, Option.getOrUndefined(requested))
    if ("problem" in found) return yield* usage(found.problem)
    if (Option.isSome(subformat) && found.format !== "vmdk") {
      return yield* usage(`--vmdk-subformat applies to VMDK files; ${path} is ${found.format}`)
    }
    return found.format
  })

const image = Args.text({ name: "NAME" }).pipe(
  Args.withDescription("An image in the store (an image spec, as `run` takes) or a qcow2 file"),
)

const path = Args.text({ name: "PATH" }).pipe(
  Args.withDescription("The file to write; its extension names the format"),
)

const exportOptions = {
  backend: imageBackendOption,
  progress: progressOption,
  format: exportFormatOption.pipe(
    Options.withDescription(`${EXPORT_FORMATS.join("|")}; default: PATH's extension`),
    Options.optional,
  ),
  vmdkSubformat: vmdkSubformatOption,
  cpus: Options.integer("cpus").pipe(
    Options.withDescription("Virtual CPUs the OVA's machine asks for"),
    Options.withDefault(OVA_DEFAULT_CPUS),
  ),
  memory: Options.integer("memory").pipe(
    Options.withPseudoName("MIB"),
    Options.withDescription("Memory the OVA's machine asks for, in MiB"),
    Options.withDefault(OVA_DEFAULT_MEMORY_MIB),
  ),
  image,
  path,
  verbose: verboseOption,
}

const ExportFlags = Schema.Struct({ cpus: AtLeastOne("cpus"), memory: AtLeastOne("memory") })

export const exportCommand = Command.make(
  "export",
  exportOptions,
  handler((args) =>
    Effect.gen(function* () {
      yield* validateOptions(ExportFlags, args)
      const format = yield* exportFormatOrUsage(args.path, args.format, args.vmdkSubformat)
      yield* Effect.gen(function* () {
        const reporter = yield* Reporter
        const exported = Effect.gen(function* () {
          const result = yield* exportImage({
            image: args.image,
            path: args.path,
            format,
            ...(Option.isSome(args.vmdkSubformat)
              ? { vmdkSubformat: args.vmdkSubformat.value }
              : {}),
            machine: { cpus: args.cpus, memoryMiB: args.memory },
          })
          yield* args.progress === "json"
            ? Console.log(JSON.stringify({ event: "exported", ...result }))
            : Console.log(`Exported ${args.image} to ${result.path} (${result.format})`)
        })
        if (args.progress !== "json") return yield* exported
        // JSON consumers read the error as an event too.
        return yield* exported.pipe(
          Effect.catchAll((error) =>
            Effect.zipRight(
              reporter.failure(describeError(error), error._tag),
              new ExitWith({ code: EXIT_FAILURE }),
            )
          ),
        )
      }).pipe(Effect.provide(storeLive({ backend: args.backend, progress: args.progress })))
    })
  ),
).pipe(
  Command.withDescription(commandDescription({
    summary: "Write an image as raw, VMDK, VHDX, VHD or OVA for the platform that runs it",
    details: [
      "Written beside PATH and renamed when complete: a failed export leaves nothing.",
      "Formats and what each is for: docs/guide.md (Exporting).",
    ],
    examples: [
      "transient image export web web.vmdk",
      "transient image export web web.vhd",
      "transient image export --cpus 4 --memory 4096 web web.ova",
      "transient image export --vmdk-subformat monolithicSparse web web.vmdk",
    ],
  })),
)
