/**
 * The help of every command (src/cli/help.ts), against what @effect/cli's own help says the
 * parser accepts, and how a command line is read before the parser takes it.
 */
import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import * as CommandDescriptor from "@effect/cli/CommandDescriptor"
import * as HelpDoc from "@effect/cli/HelpDoc"
import type * as Span from "@effect/cli/HelpDoc/Span"
import * as HashMap from "effect/HashMap"
import assert from "node:assert/strict"
import { stripVTControlCharacters } from "node:util"
import { cacheCommand } from "../../src/cli/cache_command.ts"
import { imageCommandGroup, transientCommand } from "../../src/cli/command_tree.ts"
import { type CommandHelp, commandHelp, readInvocation, renderHelp } from "../../src/cli/help.ts"

const root = commandHelp(transientCommand)

const everyCommand = (help: CommandHelp): Array<CommandHelp> => [
  help,
  ...help.subcommands.flatMap(everyCommand),
]

const find = (path: string): CommandHelp => {
  const found = everyCommand(root).find((help) => help.path.join(" ") === path)
  assert.ok(found, `no command ${path}`)
  return found
}

/** A span as @effect/cli itself prints it, without its colours. */
const spanText = (span: Span.Span): string =>
  stripVTControlCharacters(HelpDoc.toAnsiText(HelpDoc.p(span))).trimEnd()

/** The terms @effect/cli's own help lists (options and arguments): `--cache-from REF...`. */
const effectHelpTerms = (doc: HelpDoc.HelpDoc): Array<string> => {
  if (HelpDoc.isSequence(doc)) return [...effectHelpTerms(doc.left), ...effectHelpTerms(doc.right)]
  if (HelpDoc.isDescriptionList(doc)) return doc.definitions.map(([term]) => spanText(term))
  return []
}

/** Every leaf command's descriptor, by path, as @effect/cli lists them. */
const leaves = (): Array<readonly [string, CommandDescriptor.Command<unknown>]> => {
  const nested = new Map([
    ["image", Command.getSubcommands(imageCommandGroup)],
    ["cache", Command.getSubcommands(cacheCommand)],
  ])
  const result: Array<readonly [string, CommandDescriptor.Command<unknown>]> = []
  for (const [name, descriptor] of HashMap.toEntries(Command.getSubcommands(transientCommand))) {
    const group = nested.get(name)
    if (group === undefined) {
      result.push([`transient ${name}`, descriptor])
      continue
    }
    for (const [sub, leaf] of HashMap.toEntries(group)) {
      result.push([`transient ${name} ${sub}`, leaf])
    }
  }
  return result
}

const config = CliConfig.make({ showBuiltIns: false })

Deno.test("help covers every command: the root, the groups and the 12 leaves", () => {
  assert.equal(leaves().length, 12)
  assert.deepEqual(
    everyCommand(root).map((help) => help.path.join(" ")).sort(),
    [
      "transient",
      ...leaves().map(([path]) => path),
      "transient cache",
      "transient image",
    ].sort(),
  )
})

Deno.test("every command's help fits one screen, one line per option", () => {
  for (const help of everyCommand(root)) {
    const text = renderHelp(help)
    const lines = text.split("\n")
    assert.ok(lines.length <= 45, `${help.path.join(" ")}: ${lines.length} lines\n${text}`)
    assert.ok(help.summary.length > 0 && !help.summary.includes("\n"), help.path.join(" "))
    for (const option of help.options) {
      assert.ok(option.description.length > 0, `${option.name} has a description`)
      assert.ok(
        option.description.length <= 70,
        `${help.path.join(" ")} ${option.name}: ${option.description.length} characters`,
      )
    }
  }
})

/** A help page with each wrapped description joined back onto its option's line. */
const rowsOf = (page: string) => page.replace(/\n {12,}(?=\S)/g, " ")

Deno.test("help pages stay within 100 columns, descriptions wrapped under themselves", () => {
  for (const help of everyCommand(root)) {
    for (const line of renderHelp(help).split("\n")) {
      assert.ok(line.length <= 100, `${help.path.join(" ")}: ${line}`)
    }
  }
  const page = renderHelp(find("transient build"))
  assert.match(page, /^ {6}--accel auto\|kvm\|tcg {9}QEMU's accelerator .*\n {35}\S/m)
})

Deno.test("every option and argument the parser accepts is in the help, repeatable ones as such", () => {
  for (const [path, descriptor] of leaves()) {
    const text = rowsOf(renderHelp(find(path)))
    const [usage] = text.split("\nARGUMENTS")[0]!.split("\nOPTIONS")
    const terms = effectHelpTerms(CommandDescriptor.getHelp(descriptor, config))
    assert.ok(terms.length > 0, path)
    for (const term of terms) {
      const names = term.match(/--[a-z][a-z-]*/g)
      if (names === null) {
        // An argument: <NAME>, perhaps repeated.
        const name = term.split(" ")[0]!.replace(/[<>.]/g, "")
        assert.match(text, new RegExp(`^  ${name} `, "m"), `${path}: argument ${name}`)
        continue
      }
      for (const name of names) {
        assert.match(text, new RegExp(`^  (-\\w, |    )${name}\\b`, "m"), `${path}: ${name}`)
      }
      const name = names[0]!
      if (term.endsWith("...")) {
        assert.match(usage!, new RegExp(`\\[${name} [A-Z:]+\\]\\.\\.\\.`), `${path}: ${name}`)
        assert.match(text, new RegExp(`^ +${name} .*; repeatable$`, "m"), `${path}: ${name}`)
      } else if (!new RegExp(`\\[${name}[ \\]]`).test(usage!)) {
        // Shown bare in the usage, so required: @effect/cli must think so too.
        assert.equal(name, "--name", `${path}: ${name} is required`)
      }
    }
  }
})

Deno.test("build's usage: --name required, --cache-from repeatable and optional", () => {
  const text = rowsOf(renderHelp(find("transient build")))
  assert.match(text, /^ {2}transient build --name NAME \[--file FILE\]/m)
  assert.match(text, / \[--cache-from REF\]\.\.\. /)
  assert.match(text, / \[BUILD_DIR\]$/m)
  assert.match(text, /^ {6}--accel auto\|kvm\|tcg +QEMU's accelerator .* \(default: auto\)$/m)
  assert.match(text, /^ {2}-h, --help +Show this help$/m)
  assert.doesNotMatch(text, /--wizard|--completions|A true or false value|This setting is optional/)
})

Deno.test("the root lists each command on one line with its summary", () => {
  const text = renderHelp(root)
  for (const name of ["build", "run", "image", "cache", "check"]) {
    assert.match(text, new RegExp(`^ {2}${name} +[A-Z].+$`, "m"))
  }
  assert.match(text, /^ {6}--version +Print the version$/m)
})

Deno.test("a command line is read for help, typos and what is missing", () => {
  const read = (...argv: Array<string>) => readInvocation(root, argv)
  const helpOf = (...argv: Array<string>) => {
    const invocation = read(...argv)
    return invocation._tag === "Help" ? invocation.command.path.join(" ") : invocation._tag
  }
  const errorOf = (...argv: Array<string>) => {
    const invocation = read(...argv)
    return invocation._tag === "UsageError" ? invocation.message : invocation._tag
  }
  assert.equal(helpOf(), "transient")
  assert.equal(helpOf("-v"), "transient")
  assert.equal(helpOf("image"), "transient image")
  assert.equal(helpOf("image", "push", "--help"), "transient image push")
  assert.equal(helpOf("build", "-h", "--name"), "transient build")
  assert.equal(helpOf("build", "--plain", "x", "--help"), "transient build")
  assert.equal(
    errorOf("build", "--plain", "x"),
    "unknown option '--plain' for 'transient build' (the nearest is '--plain-http'; see 'transient build --help')",
  )
  assert.equal(
    errorOf("build", "--nmae", "x"),
    "unknown option '--nmae' for 'transient build' (did you mean '--name'?)",
  )
  assert.equal(
    errorOf("image", "push", "--zz", "x"),
    "unknown option '--zz' for 'transient image push' (see 'transient image push --help')",
  )
  assert.equal(errorOf("buidl"), "unknown command 'buidl' for 'transient' (did you mean 'build'?)")
  assert.equal(
    errorOf("cache", "purge"),
    "unknown command 'purge' for 'transient cache' (did you mean 'prune'?)",
  )
  assert.equal(
    errorOf("cache", "clean"),
    "unknown command 'clean' for 'transient cache' (see 'transient cache --help')",
  )
  assert.equal(errorOf("build", "."), "missing option '--name NAME' for 'transient build'")
  assert.equal(errorOf("run", "--accel", "tcg"), "missing argument IMAGE for 'transient run'")
  assert.equal(errorOf("image", "push", "web"), "missing argument REF for 'transient image push'")
  assert.equal(errorOf("image", "rm"), "missing argument NAME for 'transient image rm'")
  assert.equal(
    errorOf("build", "--name", "web", "--accel", "foo", "."),
    "--accel must be one of auto, kvm, tcg (got 'foo')",
  )
  assert.equal(
    errorOf("run", "--memory=lots", "web"),
    "--memory must be a whole number (got 'lots')",
  )
  assert.equal(
    errorOf("build", "--x\x1b[31m"),
    "unknown option '--x\\x1b[31m' for 'transient build' (see 'transient build --help')",
  )
  // Values are skipped as the parser skips them: after an option that takes one, in --x=VALUE,
  // and true or false after a flag.
  assert.equal(read("build", "-n", "web", "--cpus", "-1", ".")._tag, "Run")
  assert.equal(read("build", "--name=web", "--local", "true", ".")._tag, "Run")
  assert.equal(read("-v", "run", "--forward", "8080:80", "web")._tag, "Run")
  assert.equal(read("--version")._tag, "Run")
  assert.equal(read("check", "--", "-file")._tag, "Run")
})
