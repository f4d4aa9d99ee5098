/**
 * `transient image ls|rm|pull|build`: the image store from the command line.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { formatBytes } from "../domain/byte_size.ts"
import { visibleName } from "../domain/image_spec.ts"
import { DiskImagesQemu } from "../layers/qemu/disk_images_qemu.ts"
import { ReporterConsole } from "../layers/reporter/reporter_console.ts"
import {
  DEFAULT_MAX_IMAGE_BYTES,
  ImageStoreDirectory,
  type ImageStoreDirectoryOptions,
} from "../layers/store/image_store_directory.ts"
import { ImageStore, type StoredImage } from "../services/image_store.ts"
import { Reporter } from "../services/reporter.ts"
import { imageBuildCommand } from "./build_command.ts"
import { describeError, EXIT_FAILURE, ExitWith } from "./exit.ts"
import {
  backendDirectory,
  imageBackendOption,
  type ProgressMode,
  progressOption,
} from "./options.ts"
import { handler, verboseOption } from "./root.ts"
import { alignedTable } from "./table.ts"

/** The store on the chosen backend directory, reporting in `progress` mode. */
export const storeLayer = (
  backend: Option.Option<string>,
  progress: ProgressMode,
  options: ImageStoreDirectoryOptions = {},
) =>
  Layer.unwrapEffect(
    Effect.map(backendDirectory(backend), (directory) =>
      Layer.provideMerge(
        ImageStoreDirectory(directory, options),
        Layer.merge(DiskImagesQemu, ReporterConsole(progress)),
      )),
  )

/** `NAME  VIRT SIZE  REAL SIZE`, columns aligned, in the original's size format. */
export const imageTable = (images: ReadonlyArray<StoredImage>): string => {
  const rows = [
    ["NAME", "VIRT SIZE", "REAL SIZE"],
    ...images.map((image) => [
      // A name stored by an older version may hold a newline: one row per image regardless.
      visibleName(image.name),
      formatBytes(image.virtualSize),
      formatBytes(image.actualSize),
    ]),
  ]
  return alignedTable(rows)
}

const json = Options.boolean("json").pipe(
  Options.withDescription(
    "Print a JSON array of {name,path,virtualSize,actualSize,format} instead of a table",
  ),
)

const lsCommand = Command.make(
  "ls",
  { backend: imageBackendOption, json, verbose: verboseOption },
  handler(({ backend, json }) =>
    Effect.gen(function* () {
      const store = yield* ImageStore
      const images = yield* store.list
      if (json) {
        const rows = images.map(({ name, path, virtualSize, actualSize, format }) => ({
          name,
          path,
          virtualSize,
          actualSize,
          format,
        }))
        yield* Console.log(JSON.stringify(rows, null, 2))
      } else {
        yield* Console.log(imageTable(images))
      }
    }).pipe(Effect.provide(storeLayer(backend, "plain")))
  ),
).pipe(
  Command.withDescription(
    "List the images in the store, sorted by name, with their virtual and on-disk sizes.\n" +
      "Example: transient image ls --json",
  ),
)

const names = Args.text({ name: "NAME" }).pipe(
  Args.withDescription("The name of an image in the store (as `image ls` shows it)"),
  Args.atLeast(1),
)

const rmCommand = Command.make(
  "rm",
  { backend: imageBackendOption, names, verbose: verboseOption },
  handler(({ backend, names }) =>
    Effect.gen(function* () {
      const store = yield* ImageStore
      let failed = false
      // Every name is tried: one unknown name does not keep the others.
      for (const name of names) {
        yield* store.remove(name).pipe(
          Effect.zipRight(Console.log(`Removed ${name}`)),
          Effect.catchAll((error) =>
            Effect.zipRight(
              Console.error(`error: ${describeError(error)}`),
              Effect.sync(() => failed = true),
            )
          ),
        )
      }
      if (failed) return yield* new ExitWith({ code: EXIT_FAILURE })
    }).pipe(Effect.provide(storeLayer(backend, "plain")))
  ),
).pipe(
  Command.withDescription(
    "Remove images from the store. An unknown name is an error (exit status 1); the other " +
      "names are still removed.\nExample: transient image rm alpine-base old%2Dname",
  ),
)

const spec = Args.text({ name: "SPEC" }).pipe(
  Args.withDescription(
    "NAME (owner/box:version for a Vagrant box), NAME,file=PATH, NAME,http=URL, " +
      "NAME,https=URL or NAME,vagrant=owner/box:version, optionally followed by ,sha256=HEX",
  ),
)

const GiB = 1024 ** 3

const maxSizeOption = Options.integer("max-size").pipe(
  Options.withPseudoName("GIB"),
  Options.withDescription(
    `The most GiB the image may have once decompressed; a larger one is refused (default: ${
      DEFAULT_MAX_IMAGE_BYTES / GiB
    })`,
  ),
  Options.withSchema(Schema.Int.pipe(Schema.positive())),
  Options.optional,
)

const pullCommand = Command.make(
  "pull",
  {
    backend: imageBackendOption,
    progress: progressOption,
    maxSize: maxSizeOption,
    spec,
    verbose: verboseOption,
  },
  handler(({ backend, progress, maxSize, spec }) =>
    Effect.gen(function* () {
      const store = yield* ImageStore
      const reporter = yield* Reporter
      const pulled = Effect.gen(function* () {
        const before = yield* store.lookup(spec)
        const image = yield* store.resolve(spec)
        yield* reporter.pulled({ present: before.present, ...image })
      })
      if (progress !== "json") return yield* pulled
      // JSON consumers read the error as an event too.
      return yield* pulled.pipe(
        Effect.catchAll((error) =>
          Effect.zipRight(
            reporter.failure(describeError(error), error._tag),
            new ExitWith({ code: EXIT_FAILURE }),
          )
        ),
      )
    }).pipe(Effect.provide(storeLayer(backend, progress, {
      maxImageBytes: Option.getOrElse(maxSize, () => DEFAULT_MAX_IMAGE_BYTES / GiB) * GiB,
    })))
  ),
).pipe(
  Command.withDescription(
    "Fetch an image into the store (unless it is there already): from a file, an HTTP(S) URL " +
      "or a Vagrant box, decompressed (gzip, bzip2, xz, zstd), converted to qcow2 and, when a " +
      "checksum is known, verified.\n" +
      "Example: transient image pull alpine,https=https://example.org/alpine.qcow2.xz",
  ),
)

export const imageCommand = Command.make("image").pipe(
  Command.withDescription(
    "Manage the image store: the base images builds start FROM and the images they produce.\n" +
      "Example: transient image pull generic/alpine38:v3.0.2",
  ),
  Command.withSubcommands([lsCommand, rmCommand, pullCommand, imageBuildCommand]),
)
