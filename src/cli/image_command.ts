/**
 * `transient image ls|rm|pull|push|export|inspect|build`: the image store from the command line.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { formatBytes } from "../domain/byte_size.ts"
import { visibleName } from "../domain/visible_name.ts"
import { type PushFormat, pushImage } from "../app/push_image.ts"
import { listImages } from "../app/image_firmware.ts"
import { storeLive } from "../app/live.ts"
import { pullImage } from "../app/pull_image.ts"
import { DEFAULT_MAX_IMAGE_BYTES, ImageStore, type StoredImage } from "../services/image_store.ts"
import { Reporter } from "../services/reporter.ts"
import { describeError, EXIT_FAILURE, ExitWith } from "./exit.ts"
import { exportCommand } from "./export_command.ts"
import { inspectCommand } from "./inspect_command.ts"
import { commandDescription } from "./help.ts"
import { imageBackendOption, plainHttpOption, progressOption } from "./options.ts"
import { handler, verboseOption } from "./root.ts"
import { alignedTable } from "./table.ts"

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
    "Print JSON: name, path, sizes, format, firmware",
  ),
)

const lsCommand = Command.make(
  "ls",
  { backend: imageBackendOption, json, verbose: verboseOption },
  handler(({ backend, json }) =>
    Effect.gen(function* () {
      const images = yield* listImages()
      if (json) {
        const rows = images.map(({ name, path, virtualSize, actualSize, format, firmware }) => ({
          name,
          path,
          virtualSize,
          actualSize,
          format,
          firmware,
        }))
        yield* Console.log(JSON.stringify(rows, null, 2))
      } else {
        yield* Console.log(imageTable(images))
      }
    }).pipe(Effect.provide(storeLive({ backend, progress: "plain" })))
  ),
).pipe(
  Command.withDescription(commandDescription({
    summary: "List the images in the store with their virtual and on-disk sizes",
    examples: ["transient image ls", "transient image ls --json"],
  })),
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
    }).pipe(Effect.provide(storeLive({ backend, progress: "plain" })))
  ),
).pipe(
  Command.withDescription(commandDescription({
    summary: "Remove images from the store",
    details: ["An unknown name is an error (exit status 1); the other names are still removed."],
    examples: ["transient image rm alpine-base old%2Dname"],
  })),
)

const spec = Args.text({ name: "SPEC" }).pipe(
  // The forms are listed in docs/guide.md (FROM): owner/box:version is a Vagrant box, oci= a
  // containerDisk or disk artifact by tag or @sha256:HEX.
  Args.withDescription("NAME[,file=PATH|,http(s)=URL|,vagrant=BOX|,oci=REF][,sha256=HEX]"),
)

const GiB = 1024 ** 3

const maxSizeOption = Options.integer("max-size").pipe(
  Options.withPseudoName("GIB"),
  Options.withDescription(
    `Refuse an image larger than GIB once decompressed (default: ${DEFAULT_MAX_IMAGE_BYTES / GiB})`,
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
    plainHttp: plainHttpOption,
    spec,
    verbose: verboseOption,
  },
  handler(({ backend, progress, maxSize, plainHttp, spec }) =>
    Effect.gen(function* () {
      const reporter = yield* Reporter
      const pulled = pullImage(spec)
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
    }).pipe(Effect.provide(storeLive({
      backend,
      progress,
      maxImageBytes: Option.getOrElse(maxSize, () => DEFAULT_MAX_IMAGE_BYTES / GiB) * GiB,
      plainHttp,
    })))
  ),
).pipe(
  Command.withDescription(commandDescription({
    summary: "Fetch an image into the store from a file, a URL, a Vagrant box or a registry",
    details: [
      "It is decompressed, converted to qcow2 and, when a digest is known, verified.",
      "Registry credentials: see docs/registries.md.",
    ],
    examples: [
      "transient image pull alpine,https=https://example.org/alpine.qcow2.xz",
      "transient image pull fedora,oci=quay.io/containerdisks/fedora:40",
      "transient image pull generic/alpine38:v3.0.2",
    ],
  })),
)

const formatOption = Options.choice("format", ["containerdisk", "artifact"] as const).pipe(
  // containerdisk: a container image holding disk/disk.img; artifact: an OCI artifact whose
  // one layer is the zstd-compressed qcow2, as ORAS and Podman push disks.
  Options.withDescription("A KubeVirt containerDisk, or an OCI artifact of the zstd qcow2"),
  Options.withDefault<PushFormat>("containerdisk"),
)

const pushName = Args.text({ name: "NAME" }).pipe(
  Args.withDescription("The image in the store to push (as `image ls` shows it)"),
)
const pushReference = Args.text({ name: "REF" }).pipe(
  Args.withDescription("Where to push it: REGISTRY/REPOSITORY:TAG"),
)

const pushCommand = Command.make(
  "push",
  {
    backend: imageBackendOption,
    progress: progressOption,
    format: formatOption,
    plainHttp: plainHttpOption,
    name: pushName,
    reference: pushReference,
    verbose: verboseOption,
  },
  handler(({ backend, progress, format, plainHttp, name, reference }) =>
    Effect.gen(function* () {
      const reporter = yield* Reporter
      const pushed = Effect.gen(function* () {
        const result = yield* pushImage({ name, reference, format })
        yield* progress === "json"
          ? Console.log(
            JSON.stringify({ event: "pushed", reference: result.pinned, digest: result.digest }),
          )
          : Console.log(result.pinned)
      })
      if (progress !== "json") return yield* pushed
      return yield* pushed.pipe(
        Effect.catchAll((error) =>
          Effect.zipRight(
            reporter.failure(describeError(error), error._tag),
            new ExitWith({ code: EXIT_FAILURE }),
          )
        ),
      )
    }).pipe(Effect.provide(storeLive({ backend, progress, plainHttp })))
  ),
).pipe(
  Command.withDescription(commandDescription({
    summary: "Push an image from the store to an OCI registry; print REF@sha256:DIGEST",
    details: [
      "Blobs the registry has are not sent again. Credentials: see docs/registries.md.",
    ],
    examples: [
      "transient image push web ghcr.io/example/web-disk:1.0",
      "transient image push --format artifact web localhost:5000/web:latest",
    ],
  })),
)

/** `transient image`; main.ts adds `image build`, the older spelling of `transient build`. */
export const imageCommand = Command.make("image").pipe(
  Command.withDescription(commandDescription({
    summary: "Manage the image store: the images builds start FROM and produce",
    examples: ["transient image pull generic/alpine38:v3.0.2", "transient image ls"],
  })),
)

export const imageSubcommands = [
  lsCommand,
  rmCommand,
  pullCommand,
  pushCommand,
  exportCommand,
  inspectCommand,
] as const
