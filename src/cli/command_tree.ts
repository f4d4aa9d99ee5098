/**
 * The command tree: `transient` and its commands, as the entry point runs them and help shows
 * them.
 */
import * as Command from "@effect/cli/Command"
import { buildCommand, imageBuildCommand } from "./build_command.ts"
import { cacheCommand } from "./cache_command.ts"
import { checkCommand } from "./check.ts"
import { commandDescription } from "./help.ts"
import { imageCommand, imageSubcommands } from "./image_command.ts"
import { rootCommand } from "./root.ts"
import { runCommand } from "./run_command.ts"

/** `transient image`, with `image build`: the older spelling of `transient build`. */
export const imageCommandGroup = imageCommand.pipe(
  Command.withSubcommands([...imageSubcommands, imageBuildCommand]),
)

export const transientCommand = rootCommand.pipe(
  Command.withDescription(commandDescription({
    summary: "Build virtual-machine disk images (qcow2) from an Imagefile, inside a helper VM",
    details: ["No root, no loop devices, no host mounts."],
    examples: [
      "transient build --name web ./web",
      "transient run web --forward 8080:80",
    ],
  })),
  Command.withSubcommands([
    buildCommand,
    runCommand,
    imageCommandGroup,
    cacheCommand,
    checkCommand,
  ]),
)
