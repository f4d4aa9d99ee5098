/**
 * The command tree: `transient` and its commands, as the entry point runs them and help shows
 * them.
 */
import * as Command from "@effect/cli/Command"
import { buildCommand } from "./build_command.ts"
import { cacheCommand } from "./cache_command.ts"
import { checkCommand } from "./check.ts"
import { commandDescription } from "./help.ts"
import { imageCommand } from "./image_command.ts"
import { rootCommand } from "./root.ts"
import { runCommand } from "./run_command.ts"

export const transientCommand = rootCommand.pipe(
  Command.withDescription(commandDescription({
    summary: "Build virtual-machine disk images (qcow2) from an Imagefile, inside a helper VM",
    details: ["No root, no loop devices, no host mounts."],
    examples: [
      "transient build --name web ./web",
      "transient run web --forward 8080:80",
    ],
  })),
  Command.withSubcommands([buildCommand, runCommand, imageCommand, cacheCommand, checkCommand]),
)
