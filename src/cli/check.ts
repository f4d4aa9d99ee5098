/**
 * `transient check [FILE] [--json]`: parse and validate an Imagefile without building it.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import {
  analyzeImagefile,
  hasErrors,
  renderDiagnostics,
  summarizeImagefile,
} from "../domain/imagefile/mod.ts"
import { InvalidImagefile } from "../domain/errors/imagefile.ts"
import { EXIT_FAILURE, ExitWith } from "./exit.ts"
import { readImagefile } from "../app/load_imagefile.ts"
import { commandDescription } from "./help.ts"
import { handler, verboseOption } from "./root.ts"

const file = Args.path({ name: "FILE" }).pipe(
  // Otherwise a mistyped option would be taken for the file name.
  Args.mapEffect((path) =>
    path.startsWith("-")
      ? Effect.fail(HelpDoc.p(`Unknown option '${path}' (write ./${path} for a file of that name)`))
      : Effect.succeed(path)
  ),
  Args.withDescription("The Imagefile to check"),
  Args.withDefault("Imagefile"),
)

const json = Options.boolean("json").pipe(
  // Each one {file,line,column,endLine,endColumn,severity,code,message}, as docs/guide.md says.
  Options.withDescription("Print the diagnostics as a JSON array on stdout ([] when valid)"),
)

export const checkCommand = Command.make(
  "check",
  { file, json, verbose: verboseOption },
  handler(({ file, json }) =>
    Effect.gen(function* () {
      const text = yield* readImagefile(file)
      const { imagefile, diagnostics } = analyzeImagefile(text, file)
      if (json) {
        yield* Console.log(JSON.stringify(diagnostics, null, 2))
        if (hasErrors(diagnostics)) return yield* new ExitWith({ code: EXIT_FAILURE })
        return
      }
      const rendered = renderDiagnostics(diagnostics, text)
      const errors = diagnostics.filter((diagnostic) => diagnostic.severity === "error").length
      // The CLI edge prints the diagnostics of an InvalidImagefile, then how many there are.
      if (errors > 0) return yield* new InvalidImagefile({ file, count: errors, rendered })
      if (diagnostics.length > 0) yield* Console.error(rendered)
      yield* Console.log(summarizeImagefile(imagefile))
    })
  ),
).pipe(
  Command.withDescription(commandDescription({
    summary: "Parse and validate an Imagefile, printing every problem with its line and column",
    details: ["Exits 0 with a one-line summary when the file is valid, 1 when it is not."],
    examples: [
      "transient check                                  # checks ./Imagefile",
      "transient check --json images/alpine/Imagefile   # diagnostics as JSON, for editors and CI",
    ],
  })),
)
