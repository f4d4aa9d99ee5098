/**
 * `transient image inspect NAME [--json]`: one stored image — its file, sizes and firmware, and
 * where it came from: the Imagefile's digest, when it was built, and each container image an ADD
 * unpacked into it, with its digest, platform and config (recorded, not applied: a VM image has
 * no container ENV or WORKDIR).
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { type ImageDetails, inspectImage } from "../app/inspect_image.ts"
import { storeLive } from "../app/live.ts"
import { formatBytes } from "../domain/byte_size.ts"
import type { ContainerOrigin } from "../domain/store_record.ts"
import { visibleName } from "../domain/visible_name.ts"
import { commandDescription } from "./help.ts"
import { imageBackendOption } from "./options.ts"
import { handler, verboseOption } from "./root.ts"
import { alignedTable } from "./table.ts"

/** What `--json` prints: the fields of the text, by name. */
export const imageDetailsJson = ({ image, firmware, provenance }: ImageDetails) => ({
  name: image.name,
  path: image.path,
  format: image.format,
  virtualSize: image.virtualSize,
  actualSize: image.actualSize,
  firmware,
  ...(provenance === undefined ? {} : {
    builtAt: provenance.builtAt,
    imagefileDigest: provenance.imagefileDigest,
    containerImages: provenance.containerImages ?? [],
  }),
})

const originRows = (origin: ContainerOrigin): ReadonlyArray<ReadonlyArray<string>> => {
  const { config } = origin
  const rows: Array<ReadonlyArray<string>> = [
    ["  digest", origin.digest],
    ["  platform", origin.platform],
  ]
  if (config.created !== undefined) rows.push(["  created", config.created])
  if (config.entrypoint !== undefined) {
    rows.push(["  entrypoint", JSON.stringify(config.entrypoint)])
  }
  if (config.cmd !== undefined) rows.push(["  cmd", JSON.stringify(config.cmd)])
  if (config.workingDir !== undefined) rows.push(["  workdir", config.workingDir])
  for (const variable of config.env ?? []) rows.push(["  env", variable])
  for (const [key, value] of Object.entries(config.labels ?? {})) {
    rows.push(["  label", `${key}=${value}`])
  }
  return rows
}

/** The text `image inspect` prints: one `field  value` line each, aligned. */
export const imageDetailsText = ({ image, firmware, provenance }: ImageDetails): string => {
  const rows: Array<ReadonlyArray<string>> = [
    ["name", visibleName(image.name)],
    ["path", image.path],
    ["format", image.format],
    ["virtual size", formatBytes(image.virtualSize)],
    ["on disk", formatBytes(image.actualSize)],
    ["firmware", firmware],
  ]
  if (provenance === undefined) {
    rows.push(["built", "not here (pulled, or put in the store by hand)"])
  } else {
    rows.push(["built", provenance.builtAt], ["imagefile", provenance.imagefileDigest])
    for (const origin of provenance.containerImages ?? []) {
      rows.push(["container image", origin.source], ...originRows(origin))
    }
  }
  return alignedTable(rows)
}

const name = Args.text({ name: "NAME" }).pipe(
  Args.withDescription("The name of an image in the store (as `image ls` shows it)"),
)

const json = Options.boolean("json").pipe(
  // For a build also builtAt, imagefileDigest and containerImages.
  Options.withDescription("Print JSON: the same fields, by name"),
)

export const inspectCommand = Command.make(
  "inspect",
  { backend: imageBackendOption, json, name, verbose: verboseOption },
  handler(({ backend, json, name }) =>
    Effect.gen(function* () {
      const details = yield* inspectImage(name)
      yield* Console.log(
        json ? JSON.stringify(imageDetailsJson(details), null, 2) : imageDetailsText(details),
      )
    }).pipe(Effect.provide(storeLive({ backend, progress: "plain" })))
  ),
).pipe(
  Command.withDescription(commandDescription({
    summary: "Show one stored image: its file, sizes, firmware and where it came from",
    details: [
      "For a build: the Imagefile's digest, when it was built, and each container image",
      "that ADD unpacked into it (digest, platform, config).",
    ],
    examples: ["transient image inspect web", "transient image inspect --json web"],
  })),
)
