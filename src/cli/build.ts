import * as Command from "@effect/cli/Command"
export const buildCommand = Command.make("build")
export const imageCommand = Command.make("image")
export const imageBuildCommand = Command.make("build")
