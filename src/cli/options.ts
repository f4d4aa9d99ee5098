/**
 * Options shared by several commands: where the image store is, and how progress is shown.
 */
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { PROGRESS_MODES, type ProgressMode } from "../services/reporter.ts"
import type { Accel } from "../services/build_vm.ts"
import { cacheSizeLimit } from "../app/settings.ts"
import { usage } from "./usage.ts"

export type { ProgressMode }

/** `--image-backend DIR`; see `imageBackendDirectory` (src/app/settings.ts) for the default. */
export const imageBackendOption = Options.text("image-backend").pipe(
  Options.withPseudoName("DIR"),
  Options.withDescription("The image store (default: $TRANSIENT_IMAGE_BACKEND, see docs/guide.md)"),
  Options.optional,
)

/** `--progress auto|plain|json`: auto is a bar on a terminal, plain lines otherwise. */
export const progressOption = Options.choice("progress", PROGRESS_MODES).pipe(
  Options.withDescription("A bar on a terminal, plain lines, or JSON events"),
  Options.withDefault<ProgressMode>("auto"),
)

/** A whole number of at least 1, for the option `--flag`. */
export const AtLeastOne = (flag: string) =>
  Schema.Int.pipe(
    Schema.greaterThanOrEqualTo(1, {
      message: (issue) => `--${flag} must be at least 1 (got ${String(issue.actual)})`,
    }),
  )

/**
 * `values` decoded by `schema`, or a usage error: the first problem on one line, exit status 2.
 */
export const validateOptions = <A, I>(schema: Schema.Schema<A, I>, values: I) =>
  Schema.decode(schema)(values).pipe(
    Effect.catchTag("ParseError", (error) => {
      const [first] = ParseResult.ArrayFormatter.formatErrorSync(error)
      return usage(first?.message ?? error.message)
    }),
  )

/** The step cache's size limit (`$TRANSIENT_CACHE_SIZE`); a value that is no size is misuse. */
export const cacheSizeLimitOrUsage = cacheSizeLimit.pipe(
  Effect.catchTag("InvalidSetting", (error) => usage(error.message)),
)

/**
 * `--accel`, `--cpus`, `--memory` and `--no-network` of a command that starts `vm` ("the helper
 * VM", "the VM"); `offline` says what a VM without network cannot do.
 */
export const machineOptions = (vm: string, offline: string) => ({
  accel: Options.choice("accel", ["auto", "kvm", "tcg"] as const).pipe(
    Options.withDescription(`QEMU's accelerator for ${vm}; auto: KVM if it works, else TCG`),
    Options.withDefault("auto" as Accel),
  ),
  cpus: Options.integer("cpus").pipe(
    Options.withDescription(`Virtual CPUs of ${vm} (default: 2 under KVM, 1 under TCG)`),
    Options.optional,
  ),
  memory: Options.integer("memory").pipe(
    Options.withPseudoName("MIB"),
    Options.withDescription(`Memory of ${vm}, in MiB`),
    Options.withDefault(1024),
  ),
  noNetwork: Options.boolean("no-network").pipe(
    Options.withDescription(`Give ${vm} no network (${offline})`),
  ),
})

export const plainHttpOption = Options.boolean("plain-http").pipe(
  // Loopback registries and TRANSIENT_INSECURE_REGISTRIES get plain HTTP anyway (registries.md).
  Options.withDescription("Speak plain HTTP to the registry, not HTTPS"),
)
