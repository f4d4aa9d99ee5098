/**
 * Options shared by several commands: where the image store is, and how progress is shown.
 */
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { PROGRESS_MODES, type ProgressMode } from "../layers/reporter/reporter_console.ts"
import type { Accel } from "../services/build_vm.ts"
import { parseByteSize } from "../domain/byte_size.ts"
import { EXIT_USAGE, ExitWith } from "./exit.ts"

export type { ProgressMode }

/** `--image-backend DIR`; see `backendDirectory` for the default. */
export const imageBackendOption = Options.text("image-backend").pipe(
  Options.withPseudoName("DIR"),
  Options.withDescription("The image store (default: $TRANSIENT_IMAGE_BACKEND, see docs/guide.md)"),
  Options.optional,
)

/** `--progress auto|plain|json`: auto is a bar on a terminal, plain lines otherwise. */
export const progressOption = Options.choice("progress", PROGRESS_MODES).pipe(
  Options.withDescription("A bar (auto, on a terminal), plain lines, or JSON events"),
  Options.withDefault<ProgressMode>("auto"),
)

/** An environment variable that is set and not empty. */
const setVariable = (name: string) =>
  Config.string(name).pipe(
    Config.option,
    Config.map(Option.filter((value) => value !== "")),
  )

/**
 * The image store directory: `--image-backend`, else `$TRANSIENT_IMAGE_BACKEND`, else
 * `$XDG_DATA_HOME/transient/backend`, else `~/.local/share/transient/backend`.
 */
export const backendDirectory = (option: Option.Option<string>) =>
  Option.match(option, {
    onSome: (directory) => Effect.succeed(directory),
    onNone: () =>
      Effect.gen(function* () {
        const explicit = yield* setVariable("TRANSIENT_IMAGE_BACKEND")
        if (Option.isSome(explicit)) return explicit.value
        const dataHome = yield* setVariable("XDG_DATA_HOME")
        const home = yield* setVariable("HOME")
        const base = Option.getOrElse(
          dataHome,
          () => `${Option.getOrElse(home, () => "/tmp")}/.local/share`,
        )
        return `${base}/transient/backend`
      }),
  })

/**
 * The step cache's directory: `$TRANSIENT_CACHE_DIR`, else `$XDG_CACHE_HOME/transient`, else
 * `~/.cache/transient`.
 */
export const cacheDirectory = Effect.gen(function* () {
  const explicit = yield* setVariable("TRANSIENT_CACHE_DIR")
  if (Option.isSome(explicit)) return explicit.value
  const cacheHome = yield* setVariable("XDG_CACHE_HOME")
  const home = yield* setVariable("HOME")
  const base = Option.getOrElse(cacheHome, () => `${Option.getOrElse(home, () => "/tmp")}/.cache`)
  return `${base}/transient`
})

/** How much the step cache keeps after each build, unless `$TRANSIENT_CACHE_SIZE` says. */
export const DEFAULT_CACHE_BYTES = 20 * 1024 ** 3

/** `$TRANSIENT_CACHE_SIZE` (`10G`, `500MB`, bytes), else DEFAULT_CACHE_BYTES. */
export const cacheLimit = Effect.gen(function* () {
  const text = yield* setVariable("TRANSIENT_CACHE_SIZE")
  if (Option.isNone(text)) return DEFAULT_CACHE_BYTES
  const bytes = parseByteSize(text.value)
  if (bytes === undefined) {
    yield* Console.error(
      `error: TRANSIENT_CACHE_SIZE must be a size such as 10G or 500MB (got '${text.value}')`,
    )
    return yield* new ExitWith({ code: EXIT_USAGE })
  }
  return bytes
})

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
      return Effect.zipRight(
        Console.error(`error: ${first?.message ?? error.message}`),
        new ExitWith({ code: EXIT_USAGE }),
      )
    }),
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
