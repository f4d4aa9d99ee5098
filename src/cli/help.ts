/**
 * Help a person can read, and usage errors that say what is wrong, both drawn from the command
 * tree the parser runs on (@effect/cli's descriptors), so that neither can drift from it: one line
 * per option, as docker, podman and git print them, instead of @effect/cli's own page-long help.
 */
import type * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import type * as Span from "@effect/cli/HelpDoc/Span"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { visibleName } from "../domain/visible_name.ts"
import { closestWord, nearestWord } from "../domain/imagefile/suggest.ts"
import { EXIT_USAGE, ExitWith } from "./exit.ts"

/** One option as help shows it: `-n, --name NAME  The name of the image to build`. */
export interface OptionHelp {
  /** `--name` */
  readonly name: string
  /** `-n` */
  readonly alias: string | undefined
  /** What its value is called (`NAME`, `auto|kvm|tcg`); none for a flag. */
  readonly metavar: string | undefined
  readonly description: string
  readonly defaultValue: string | undefined
  readonly required: boolean
  readonly repeated: boolean
  /** The values it takes, when they are a few words. */
  readonly choices: ReadonlyArray<string> | undefined
  readonly integer: boolean
}

/** One positional argument as help shows it. */
export interface ArgumentHelp {
  readonly name: string
  readonly description: string
  readonly defaultValue: string | undefined
  /** How many must be given: 0 when it is optional. */
  readonly min: number
  readonly repeated: boolean
}

/** A command, its options and arguments, and its subcommands, as help shows them. */
export interface CommandHelp {
  /** `["transient", "image", "push"]` */
  readonly path: ReadonlyArray<string>
  readonly summary: string
  /** Lines of explanation after the summary, when one line cannot say it. */
  readonly details: ReadonlyArray<string>
  readonly examples: ReadonlyArray<string>
  readonly options: ReadonlyArray<OptionHelp>
  readonly args: ReadonlyArray<ArgumentHelp>
  readonly subcommands: ReadonlyArray<CommandHelp>
}

/**
 * A command's description as help reads it: a one-line summary, perhaps a line or two more, and
 * examples. For Command.withDescription.
 */
export const commandDescription = (description: {
  readonly summary: string
  readonly details?: ReadonlyArray<string>
  readonly examples?: ReadonlyArray<string>
}): HelpDoc.HelpDoc => {
  const [first, ...rest] = description.examples ?? []
  return HelpDoc.blocks([
    HelpDoc.p(description.summary),
    ...(description.details ?? []).map((line) => HelpDoc.p(line)),
    ...(first === undefined ? [] : [
      HelpDoc.enumeration([HelpDoc.p(first), ...rest.map((example) => HelpDoc.p(example))]),
    ]),
  ])
}

// The shapes of @effect/cli's descriptors, which its public types keep opaque. Read only here.

type Primitive =
  | { readonly _tag: "Bool" }
  | { readonly _tag: "Choice"; readonly alternatives: ReadonlyArray<readonly [string, unknown]> }
  | { readonly _tag: "Path"; readonly pathType: "file" | "directory" | "either" }
  | { readonly _tag: "DateTime" | "Float" | "Integer" | "Redacted" | "Secret" | "Text" }

interface SingleOption {
  readonly _tag: "Single"
  readonly name: string
  readonly aliases: ReadonlyArray<string>
  readonly primitiveType: Primitive
  readonly description: HelpDoc.HelpDoc
  readonly pseudoName: Option.Option<string>
}

type OptionsNode =
  | { readonly _tag: "Empty" }
  | SingleOption
  | { readonly _tag: "Both" | "OrElse"; readonly left: OptionsNode; readonly right: OptionsNode }
  | { readonly _tag: "Map" | "WithFallback"; readonly options: OptionsNode }
  | { readonly _tag: "WithDefault"; readonly options: OptionsNode; readonly fallback: unknown }
  | {
    readonly _tag: "Variadic" | "KeyValueMap"
    readonly argumentOption: SingleOption
    readonly min?: Option.Option<number>
  }

type ArgsNode =
  | { readonly _tag: "Empty" }
  | {
    readonly _tag: "Single"
    readonly name: string
    readonly description: HelpDoc.HelpDoc
  }
  | { readonly _tag: "Both"; readonly left: ArgsNode; readonly right: ArgsNode }
  | { readonly _tag: "Map" | "WithFallbackConfig"; readonly args: ArgsNode }
  | { readonly _tag: "WithDefault"; readonly args: ArgsNode; readonly fallback: unknown }
  | { readonly _tag: "Variadic"; readonly args: ArgsNode; readonly min: Option.Option<number> }

type DescriptorNode =
  | {
    readonly _tag: "Standard"
    readonly name: string
    readonly description: HelpDoc.HelpDoc
    readonly options: OptionsNode
    readonly args: ArgsNode
  }
  | { readonly _tag: "GetUserInput"; readonly name: string; readonly description: HelpDoc.HelpDoc }
  | { readonly _tag: "Map"; readonly command: DescriptorNode }
  | {
    readonly _tag: "Subcommands"
    readonly parent: DescriptorNode
    readonly children: ReadonlyArray<DescriptorNode>
  }

const spanText = (span: Span.Span): string => {
  switch (span._tag) {
    case "Text":
    case "URI":
      return span.value
    case "Sequence":
      return spanText(span.left) + spanText(span.right)
    default:
      return spanText(span.value)
  }
}

/** The paragraphs of `doc`, and its enumerated items apart (a command's examples). */
const docBlocks = (
  doc: HelpDoc.HelpDoc,
): { readonly paragraphs: Array<string>; readonly items: Array<string> } => {
  const paragraphs: Array<string> = []
  const items: Array<string> = []
  const walk = (node: HelpDoc.HelpDoc, into: Array<string>): void => {
    if (HelpDoc.isSequence(node)) {
      walk(node.left, into)
      walk(node.right, into)
    } else if (HelpDoc.isParagraph(node) || HelpDoc.isHeader(node)) {
      into.push(spanText(node.value))
    } else if (HelpDoc.isEnumeration(node)) {
      for (const element of node.elements) walk(element, items)
    }
  }
  walk(doc, paragraphs)
  return { paragraphs, items }
}

const describe = (doc: HelpDoc.HelpDoc) => docBlocks(doc).paragraphs.join(" ")

/** What a value given to `fallback` prints as, when it is worth printing. */
const shownDefault = (fallback: unknown): string | undefined => {
  if (Option.isOption(fallback) || fallback === false || fallback === undefined) return undefined
  return String(fallback)
}

const metavarOf = (single: SingleOption): string | undefined => {
  if (Option.isSome(single.pseudoName)) return single.pseudoName.value
  const type = single.primitiveType
  switch (type._tag) {
    case "Bool":
      return undefined
    case "Choice":
      return type.alternatives.map(([name]) => name).join("|")
    case "Path":
      return type.pathType === "file" ? "FILE" : type.pathType === "directory" ? "DIR" : "PATH"
    case "Integer":
      return "N"
    case "Float":
      return "NUMBER"
    case "DateTime":
      return "DATE"
    default:
      return single.name.toUpperCase()
  }
}

interface OptionContext {
  readonly required: boolean
  readonly repeated: boolean
  readonly defaultValue: string | undefined
}

const optionsOf = (node: OptionsNode, context: OptionContext): Array<OptionHelp> => {
  switch (node._tag) {
    case "Empty":
      return []
    case "Single":
      return [{
        name: `--${node.name}`,
        alias: node.aliases.map((alias) => `-${alias}`)[0],
        metavar: metavarOf(node),
        description: describe(node.description),
        choices: node.primitiveType._tag === "Choice"
          ? node.primitiveType.alternatives.map(([name]) => name)
          : undefined,
        integer: node.primitiveType._tag === "Integer",
        ...context,
      }]
    case "Both":
    case "OrElse":
      return [...optionsOf(node.left, context), ...optionsOf(node.right, context)]
    case "Map":
      return optionsOf(node.options, context)
    case "WithFallback":
      return optionsOf(node.options, { ...context, required: false })
    case "WithDefault":
      return optionsOf(node.options, {
        ...context,
        required: false,
        defaultValue: shownDefault(node.fallback),
      })
    case "Variadic":
    case "KeyValueMap":
      return optionsOf(node.argumentOption, {
        ...context,
        required: Option.getOrElse(node.min ?? Option.none(), () => 0) > 0,
        repeated: true,
      })
  }
}

interface ArgumentContext {
  readonly min: number
  readonly repeated: boolean
  readonly defaultValue: string | undefined
}

const argsOf = (node: ArgsNode, context: ArgumentContext): Array<ArgumentHelp> => {
  switch (node._tag) {
    case "Empty":
      return []
    case "Single":
      // @effect/cli keeps an argument's name in angle brackets.
      return [{
        name: node.name.replace(/^<(.*)>$/, "$1"),
        description: describe(node.description),
        ...context,
      }]
    case "Both":
      return [...argsOf(node.left, context), ...argsOf(node.right, context)]
    case "Map":
      return argsOf(node.args, context)
    case "WithFallbackConfig":
      return argsOf(node.args, { ...context, min: 0 })
    case "WithDefault":
      return argsOf(node.args, { ...context, min: 0, defaultValue: shownDefault(node.fallback) })
    case "Variadic":
      return argsOf(node.args, {
        ...context,
        min: Option.getOrElse(node.min, () => 0),
        repeated: true,
      })
  }
}

const helpOf = (node: DescriptorNode, parents: ReadonlyArray<string>): CommandHelp => {
  switch (node._tag) {
    case "Map":
      return helpOf(node.command, parents)
    case "Subcommands": {
      const parent = helpOf(node.parent, parents)
      return {
        ...parent,
        subcommands: node.children.map((child) => helpOf(child, parent.path)),
      }
    }
    case "GetUserInput":
    case "Standard": {
      const { paragraphs, items } = docBlocks(node.description)
      const [summary = "", ...details] = paragraphs
      return {
        path: [...parents, node.name],
        summary,
        details,
        examples: items,
        options: node._tag === "Standard"
          ? optionsOf(node.options, { required: true, repeated: false, defaultValue: undefined })
          : [],
        args: node._tag === "Standard"
          ? argsOf(node.args, { min: 1, repeated: false, defaultValue: undefined })
          : [],
        subcommands: [],
      }
    }
  }
}

/** The help of `command` and of every command under it. */
export const commandHelp = <Name extends string, R, E, A>(
  command: Command.Command<Name, R, E, A>,
): CommandHelp => helpOf(command.descriptor as unknown as DescriptorNode, [])

/** @effect/cli's own options, which every command accepts. */
const HELP: OptionHelp = {
  name: "--help",
  alias: "-h",
  metavar: undefined,
  description: "Show this help",
  defaultValue: undefined,
  required: false,
  repeated: false,
  choices: undefined,
  integer: false,
}
const VERSION: OptionHelp = {
  ...HELP,
  name: "--version",
  alias: undefined,
  description: "Print the version",
}
/** Accepted and left to @effect/cli, never shown: its wizard, completions and log level. */
const HIDDEN_BUILT_INS: ReadonlyArray<OptionHelp> = [
  { ...HELP, name: "--wizard", alias: undefined },
  { ...HELP, name: "--completions", alias: undefined, metavar: "SHELL" },
  { ...HELP, name: "--log-level", alias: undefined, metavar: "LEVEL" },
]

const isRoot = (help: CommandHelp) => help.path.length === 1

/** The options `help` shows: its own, then help (and on the root, the version). */
const shownOptions = (help: CommandHelp): ReadonlyArray<OptionHelp> => [
  ...help.options,
  HELP,
  ...(isRoot(help) ? [VERSION] : []),
]

const WIDTH = 80

/** `words` as lines of at most WIDTH columns, the first after `lead`, the rest aligned under it. */
const wrapped = (lead: string, words: ReadonlyArray<string>): Array<string> => {
  const lines: Array<string> = []
  let line = lead
  let empty = true
  for (const word of words) {
    if (!empty && line.length + 1 + word.length > WIDTH) {
      lines.push(line)
      line = " ".repeat(lead.length)
      empty = true
    }
    line += empty ? word : ` ${word}`
    empty = false
  }
  lines.push(line)
  return lines
}

const optionWithValue = (option: OptionHelp) =>
  option.metavar === undefined ? option.name : `${option.name} ${option.metavar}`

const argumentUsage = (argument: ArgumentHelp) => {
  const shown = argument.repeated ? `${argument.name}...` : argument.name
  return argument.min > 0 ? shown : `[${shown}]`
}

/** The usage line: required options bare, optional ones in brackets, repeatable ones with `...`. */
const usageLines = (help: CommandHelp): Array<string> => {
  const words = [
    ...help.options.filter((option) => option.required).map(optionWithValue),
    ...help.options.filter((option) => !option.required).map((option) =>
      `[${optionWithValue(option)}]${option.repeated ? "..." : ""}`
    ),
    ...(help.subcommands.length > 0 ? ["COMMAND", "..."] : help.args.map(argumentUsage)),
  ]
  return wrapped(`  ${help.path.join(" ")} `, words)
}

/** How wide a help page may be: what a terminal beside an editor shows. */
const PAGE_WIDTH = 100

/** `text` in lines of at most `width` characters, broken between words. */
const wordLines = (text: string, width: number): Array<string> => {
  const lines: Array<string> = []
  let line = ""
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else {
      line = line === "" ? word : `${line} ${word}`
    }
  }
  return [...lines, line]
}

/**
 * Two columns: names padded to the widest, then what they do, wrapped under itself within the
 * page's width.
 */
const columns = (rows: ReadonlyArray<readonly [string, string]>): Array<string> => {
  const width = Math.max(...rows.map(([name]) => name.length))
  const indent = 2 + width + 3
  return rows.flatMap(([name, text]) =>
    wordLines(text, Math.max(PAGE_WIDTH - indent, 30)).map((part, index) =>
      `${index === 0 ? `  ${name.padEnd(width)}   ` : " ".repeat(indent)}${part}`.trimEnd()
    )
  )
}

const withDefault = (text: string, defaultValue: string | undefined) =>
  defaultValue === undefined ? text : `${text} (default: ${defaultValue})`

const optionRow = (option: OptionHelp): readonly [string, string] => [
  `${option.alias === undefined ? "    " : `${option.alias}, `}${optionWithValue(option)}`,
  withDefault(option.description, option.defaultValue) + (option.repeated ? "; repeatable" : ""),
]

/** The help page of one command: summary, usage, arguments or commands, options, examples. */
export const renderHelp = (help: CommandHelp): string => {
  const section = (title: string, lines: ReadonlyArray<string>) =>
    lines.length === 0 ? [] : ["", title, ...lines]
  const lines = [
    help.summary,
    ...help.details,
    ...section("USAGE", usageLines(help)),
    ...section(
      "COMMANDS",
      columns(help.subcommands.map((sub) => [sub.path.at(-1)!, sub.summary])),
    ),
    ...section(
      "ARGUMENTS",
      columns(help.args.map((arg) => [arg.name, withDefault(arg.description, arg.defaultValue)])),
    ),
    ...section("OPTIONS", columns(shownOptions(help).map(optionRow))),
    ...section("EXAMPLES", help.examples.map((example) => `  ${example}`)),
    ...(help.subcommands.length > 0
      ? ["", `Run '${help.path.join(" ")} COMMAND --help' for a command's options.`]
      : []),
  ]
  return lines.join("\n")
}

/** What a command line asks for, read before @effect/cli parses it. */
export type Invocation =
  | { readonly _tag: "Help"; readonly command: CommandHelp }
  | { readonly _tag: "UsageError"; readonly message: string }
  | { readonly _tag: "Run" }

const BOOLEAN_WORDS = new Set(["true", "1", "y", "yes", "on", "false", "0", "n", "no", "off"])

/** What is wrong with `value` for `option`, when the words it takes say so. */
const valueProblem = (option: OptionHelp, value: string): string | undefined => {
  if (option.choices !== undefined && !option.choices.includes(value)) {
    return `${option.name} must be one of ${option.choices.join(", ")} (got '${
      visibleName(value)
    }')`
  }
  if (option.integer && (value.trim() === "" || !Number.isInteger(Number(value)))) {
    return `${option.name} must be a whole number (got '${visibleName(value)}')`
  }
  return undefined
}

const quoted = (help: CommandHelp) => `'${help.path.join(" ")}'`

/**
 * The likely typo's fix; else, for an option, the nearest one and where to look; else where to
 * look.
 */
const suggestion = (
  help: CommandHelp,
  word: string,
  candidates: ReadonlyArray<string>,
  kind: "option" | "command",
) => {
  const closest = closestWord(word, candidates)
  if (closest !== undefined) return ` (did you mean '${closest}'?)`
  const nearest = kind === "option" ? nearestWord(word, candidates) : undefined
  const see = `see '${help.path.join(" ")} --help'`
  return nearest === undefined ? ` (${see})` : ` (the nearest is '${nearest}'; ${see})`
}

/**
 * What `argv` (the arguments after the program's name) asks of `root`: help (`--help`, `-h`, or a
 * command that needs a subcommand and has none), a usage error @effect/cli would report badly (an
 * unknown option or command, a missing option or argument), or a run that the parser takes on.
 * Options are read as @effect/cli reads them: `--name VALUE`, `--name=VALUE`, a flag perhaps
 * followed by true or false.
 */
export const readInvocation = (root: CommandHelp, argv: ReadonlyArray<string>): Invocation => {
  let command = root
  let helpAsked = false
  let problem: string | undefined
  const given = new Set<string>()
  let positionals = 0
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!
    if (word === "--") break
    if (word.startsWith("-") && word.length > 1) {
      const name = word.split("=", 1)[0]!
      if (name === "--help" || name === "-h") {
        helpAsked = true
        continue
      }
      const known = [...command.options, ...HIDDEN_BUILT_INS, VERSION]
      const option = known.find((candidate) => candidate.name === name || candidate.alias === name)
      if (option === undefined) {
        problem ??= `unknown option '${visibleName(name)}' for ${quoted(command)}${
          suggestion(
            command,
            name,
            shownOptions(command).map((candidate) => candidate.name),
            "option",
          )
        }`
        continue
      }
      given.add(option.name)
      if (option.metavar === undefined) {
        if (name === word && BOOLEAN_WORDS.has(argv[i + 1] ?? "")) i++
        continue
      }
      const value = name === word ? argv[++i] : word.slice(name.length + 1)
      if (value !== undefined) problem ??= valueProblem(option, value)
      continue
    }
    if (command.subcommands.length > 0) {
      const next = command.subcommands.find((sub) => sub.path.at(-1) === word)
      if (next === undefined) {
        problem ??= `unknown command '${visibleName(word)}' for ${quoted(command)}${
          suggestion(
            command,
            word,
            command.subcommands.map((sub) => sub.path.at(-1)!),
            "command",
          )
        }`
        continue
      }
      command = next
      continue
    }
    positionals++
  }
  if (helpAsked) return { _tag: "Help", command }
  if (problem !== undefined) return { _tag: "UsageError", message: problem }
  // --version, --wizard and --completions need nothing else.
  if (HIDDEN_BUILT_INS.some((option) => given.has(option.name)) || given.has(VERSION.name)) {
    return { _tag: "Run" }
  }
  // As @effect/cli does, a command that needs a subcommand and has none shows its help.
  if (command.subcommands.length > 0) return { _tag: "Help", command }
  const missing = command.options.find((option) => option.required && !given.has(option.name))
  if (missing !== undefined) {
    return {
      _tag: "UsageError",
      message: `missing option '${optionWithValue(missing)}' for ${quoted(command)}`,
    }
  }
  let needed = 0
  for (const argument of command.args) {
    needed += argument.min
    if (positionals < needed) {
      return {
        _tag: "UsageError",
        message: `missing argument ${argument.name} for ${quoted(command)}`,
      }
    }
  }
  return { _tag: "Run" }
}

/**
 * `run` (the CLI app) on `argv`, unless `argv` asks for help, printed on stdout, or makes a usage
 * error, printed on stderr as one line, exit status 2.
 */
export const withReadableHelp = <E, R>(
  root: CommandHelp,
  argv: ReadonlyArray<string>,
  run: Effect.Effect<void, E, R>,
): Effect.Effect<void, E | ExitWith, R> => {
  const invocation = readInvocation(root, argv)
  switch (invocation._tag) {
    case "Help":
      return Console.log(renderHelp(invocation.command))
    case "UsageError":
      return Effect.zipRight(
        Console.error(`error: ${invocation.message}`),
        new ExitWith({ code: EXIT_USAGE }),
      )
    case "Run":
      return run
  }
}
