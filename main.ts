/**
 * transient: build virtual-machine disk images from an Imagefile.
 *
 * The entry point: the command tree, the live layers, and the CLI edge.
 */
import * as Command from "@effect/cli/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import { buildCommand } from "./src/cli/build.ts"
import { imageCommand } from "./src/cli/image.ts"
import { checkCommand } from "./src/cli/check.ts"
import { runCli, withColourOnlyOnTerminals } from "./src/cli/exit.ts"
import { VERSION } from "./src/version.ts"

const transient = Command.make("transient").pipe(
  Command.withDescription(
    "Build virtual-machine disk images (qcow2) from an Imagefile, inside a small helper VM: " +
      "no root, no loop devices, no host mounts.",
  ),
  Command.withSubcommands([buildCommand, imageCommand, checkCommand]),
)

const cli = Command.run(transient, { name: "transient", version: VERSION })

const verbose = Deno.args.includes("--verbose") || Deno.args.includes("-v")
const args = Deno.args.filter((arg) => arg !== "--verbose" && arg !== "-v")

runCli(
  withColourOnlyOnTerminals(cli(["deno", "transient", ...args])).pipe(
    Effect.provide(NodeContext.layer),
  ),
  { verbose },
)
