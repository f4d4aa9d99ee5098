/**
 * What the environment says about where things are: the image store, the step cache and its size
 * limit. Read through `Config`, so a test can give its own ConfigProvider.
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { parseByteSize } from "../domain/byte_size.ts"

/** An environment variable that is set and not empty. */
const setVariable = (name: string) =>
  Config.string(name).pipe(
    Config.option,
    Config.map(Option.filter((value) => value !== "")),
  )

/** `$XDG_*_HOME`, else `~/` + `fallback` (`/tmp` without a home). */
const baseDirectory = (xdg: string, fallback: string) =>
  Config.all([setVariable(xdg), setVariable("HOME")]).pipe(
    Config.map(([dir, home]) =>
      Option.getOrElse(dir, () => `${Option.getOrElse(home, () => "/tmp")}/${fallback}`)
    ),
  )

/**
 * The image store directory: `$TRANSIENT_IMAGE_BACKEND`, else `$XDG_DATA_HOME/transient/backend`,
 * else `~/.local/share/transient/backend`.
 */
export const imageBackendSetting: Config.Config<string> = Config.all([
  setVariable("TRANSIENT_IMAGE_BACKEND"),
  baseDirectory("XDG_DATA_HOME", ".local/share"),
]).pipe(
  Config.map(([explicit, base]) => Option.getOrElse(explicit, () => `${base}/transient/backend`)),
)

/**
 * The step cache's directory: `$TRANSIENT_CACHE_DIR`, else `$XDG_CACHE_HOME/transient`, else
 * `~/.cache/transient`.
 */
export const cacheDirectorySetting: Config.Config<string> = Config.all([
  setVariable("TRANSIENT_CACHE_DIR"),
  baseDirectory("XDG_CACHE_HOME", ".cache"),
]).pipe(Config.map(([explicit, base]) => Option.getOrElse(explicit, () => `${base}/transient`)))

/** How much the step cache keeps after each build, unless `$TRANSIENT_CACHE_SIZE` says. */
export const DEFAULT_CACHE_BYTES = 20 * 1024 ** 3

/** A setting in the environment that cannot be used: a usage error. */
export class InvalidSetting extends Schema.TaggedError<InvalidSetting>()("InvalidSetting", {
  variable: Schema.String,
  reason: Schema.String,
}) {
  override get message() {
    return `${this.variable} ${this.reason}`
  }
}

/** `$TRANSIENT_CACHE_SIZE` (`10G`, `500MB`, bytes), else DEFAULT_CACHE_BYTES. */
export const cacheSizeLimit: Effect.Effect<number, InvalidSetting> = Effect.flatMap(
  Effect.orDie(setVariable("TRANSIENT_CACHE_SIZE")),
  Option.match({
    onNone: () => Effect.succeed(DEFAULT_CACHE_BYTES),
    onSome: (text) => {
      const bytes = parseByteSize(text)
      return bytes === undefined
        ? new InvalidSetting({
          variable: "TRANSIENT_CACHE_SIZE",
          reason: `must be a size such as 10G or 500MB (got '${text}')`,
        })
        : Effect.succeed(bytes)
    },
  }),
)

/** The image store directory: the command's `--image-backend`, else imageBackendSetting. */
export const imageBackendDirectory = (option: Option.Option<string>): Effect.Effect<string> =>
  Option.match(option, {
    onSome: Effect.succeed,
    onNone: () => Effect.orDie(imageBackendSetting),
  })
