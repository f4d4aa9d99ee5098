import * as Command from "@effect/cli/Command"
export const checkCommand = Command.make("check")
