/**
 * Options shared by several commands: where the image store is, and how progress is shown.
 */
import * as Options from "@effect/cli/Options"
import * as Option from "effect/Option"
import { PROGRESS_MODES, type ProgressMode } from "../layers/reporter/reporter_console.ts"

export type { ProgressMode }

/** `--image-backend DIR`; see `backendDirOf` for the default. */
export const imageBackendOption = Options.text("image-backend").pipe(
  Options.withPseudoName("DIR"),
  Options.withDescription(
    "The image store directory (default: $TRANSIENT_IMAGE_BACKEND, else " +
      "$XDG_DATA_HOME/transient/backend, else ~/.local/share/transient/backend)",
  ),
  Options.optional,
)

/** `--progress auto|plain|json` */
export const progressOption = Options.choice("progress", PROGRESS_MODES).pipe(
  Options.withPseudoName("MODE"),
  Options.withDescription(
    "How to show progress: auto (a bar on a terminal, plain lines otherwise), plain, or json " +
      "(one JSON object per event and line on stdout, for CI systems)",
  ),
  Options.withDefault<ProgressMode>("auto"),
)

/**
 * The image store directory: `--image-backend`, else `$TRANSIENT_IMAGE_BACKEND`, else
 * `$XDG_DATA_HOME/transient/backend`, else `~/.local/share/transient/backend`.
 */
export const backendDirOf = (
  option: Option.Option<string>,
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): string => {
  if (Option.isSome(option)) return option.value
  const nonEmpty = (name: string) => {
    const value = env(name)
    return value === undefined || value === "" ? undefined : value
  }
  const explicit = nonEmpty("TRANSIENT_IMAGE_BACKEND")
  if (explicit !== undefined) return explicit
  const dataHome = nonEmpty("XDG_DATA_HOME") ?? `${nonEmpty("HOME") ?? "/tmp"}/.local/share`
  return `${dataHome}/transient/backend`
}
