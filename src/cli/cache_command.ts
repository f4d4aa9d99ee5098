/**
 * `transient cache ls|prune`: the step cache from the command line.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { cacheLive } from "../app/live.ts"
import { pruneCache } from "../app/prune_cache.ts"
import { DEFAULT_CACHE_BYTES } from "../app/settings.ts"
import { formatBytes, parseByteSize } from "../domain/byte_size.ts"
import { LayerCache, type LayerEntry } from "../services/layer_cache.ts"
import { commandDescription } from "./help.ts"
import { cacheSizeLimitOrUsage } from "./options.ts"
import { handler, verboseOption } from "./root.ts"
import { alignedTable } from "./table.ts"

/** Seconds, minutes, hours or days ago, as `docker` prints them. */
const ago = (ms: number, now: number): string => {
  const seconds = Math.max(0, Math.round((now - ms) / 1000))
  if (seconds < 60) return `${seconds} seconds ago`
  if (seconds < 3600) return `${Math.round(seconds / 60)} minutes ago`
  if (seconds < 86400) return `${Math.round(seconds / 3600)} hours ago`
  return `${Math.round(seconds / 86400)} days ago`
}

/** One line of a step's text: long ones are cut, newlines shown as spaces. */
const shortText = (text: string, width = 60): string => {
  const line = text.replace(/\s+/g, " ")
  return line.length > width ? `${line.slice(0, width - 1)}…` : line
}

/** `KEY  SIZE  LAST USED  STEP`, columns aligned, most recently used first. */
export const cacheTable = (entries: ReadonlyArray<LayerEntry>, now: number): string => {
  const rows = [
    ["KEY", "SIZE", "LAST USED", "STEP"],
    ...entries.map((entry) => [
      entry.key.slice(0, 12),
      formatBytes(entry.sizeBytes),
      ago(entry.lastUsedMs, now),
      shortText(entry.text),
    ]),
  ]
  return alignedTable(rows)
}

const json = Options.boolean("json").pipe(
  Options.withDescription("Print a JSON array of {key,parent,text,sizeBytes,createdMs,lastUsedMs}"),
)

const lsCommand = Command.make(
  "ls",
  { json, verbose: verboseOption },
  handler(({ json }) =>
    Effect.gen(function* () {
      const cache = yield* LayerCache
      const entries = yield* cache.list
      if (json) return yield* Console.log(JSON.stringify(entries, null, 2))
      yield* Console.log(cacheTable(entries, Date.now()))
      const total = entries.reduce((sum, entry) => sum + entry.sizeBytes, 0)
      yield* Console.log(`${entries.length} layers, ${formatBytes(total)} in ${cache.root}`)
    }).pipe(Effect.provide(cacheLive))
  ),
).pipe(
  Command.withDescription(commandDescription({
    summary: "List the step cache's layers, most recently used first",
    examples: ["transient cache ls", "transient cache ls --json"],
  })),
)

const all = Options.boolean("all").pipe(
  Options.withDescription("Remove every layer, and the helper VM's saved states"),
)

const keepStorage = Options.text("keep-storage").pipe(
  Options.withPseudoName("SIZE"),
  Options.withDescription(
    `Keep at most SIZE (default: $TRANSIENT_CACHE_SIZE, else ${formatBytes(DEFAULT_CACHE_BYTES)})`,
  ),
  Options.withSchema(
    Schema.String.pipe(
      Schema.filter((text) =>
        parseByteSize(text) !== undefined || `'${text}' is not a size such as 10G or 500MB`
      ),
    ),
  ),
  Options.optional,
)

const pruneCommand = Command.make(
  "prune",
  { all, keepStorage, verbose: verboseOption },
  handler(({ all, keepStorage }) =>
    Effect.gen(function* () {
      const keepBytes = Option.isSome(keepStorage)
        ? parseByteSize(keepStorage.value)!
        : yield* cacheSizeLimitOrUsage
      const result = yield* pruneCache({ all, keepBytes })
      const { states } = result
      yield* Console.log(
        `Removed ${result.removed} layers${
          states.count > 0
            ? ` and ${states.count} saved helper-VM state${states.count === 1 ? "" : "s"}`
            : ""
        }, ${formatBytes(result.freedBytes + states.bytes)} freed`,
      )
    }).pipe(Effect.provide(cacheLive))
  ),
).pipe(
  Command.withDescription(commandDescription({
    summary: "Remove the least recently used layers from the step cache, or --all",
    details: ["Builds prune the same way after each build."],
    examples: ["transient cache prune --keep-storage 5G", "transient cache prune --all"],
  })),
)

export const cacheCommand = Command.make("cache").pipe(
  Command.withDescription(commandDescription({
    summary: "Manage the step cache: the layers of earlier builds",
    details: [
      "It is $TRANSIENT_CACHE_DIR, else $XDG_CACHE_HOME/transient, else ~/.cache/transient,",
      "beside the helper VM's saved states (helper-vm/, about 200 MB each, the newest 3 kept).",
    ],
    examples: ["transient cache ls", "transient cache prune --keep-storage 5G"],
  })),
  Command.withSubcommands([lsCommand, pruneCommand]),
)
