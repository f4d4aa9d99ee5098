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
import { type PushFormat, pushImage } from "../app/push_image.ts"
import { RegistryHttp } from "../layers/registry/registry_http.ts"
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
  plainHttpOption,
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
  plainHttp = false,
) =>
  Layer.unwrapEffect(
    Effect.map(backendDirectory(backend), (directory) =>
      Layer.provideMerge(
        ImageStoreDirectory(directory, options),
        Layer.mergeAll(DiskImagesQemu, ReporterConsole(progress), RegistryHttp(plainHttp)),
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
      "NAME,https=URL or NAME,vagrant=owner/box:version, optionally followed by ,sha256=HEX; " +
      "or NAME,oci=REGISTRY/REPOSITORY:TAG (or @sha256:HEX), a containerDisk or disk artifact",
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
    plainHttp: plainHttpOption,
    spec,
    verbose: verboseOption,
  },
  handler(({ backend, progress, maxSize, plainHttp, spec }) =>
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
    }, plainHttp)))
  ),
).pipe(
  Command.withDescription(
    "Fetch an image into the store (unless it is there already): from a file, an HTTP(S) URL " +
      "a Vagrant box or an OCI registry, decompressed (gzip, bzip2, xz, zstd), converted to " +
      "qcow2 and, when a checksum or digest is known, verified. Registry credentials come from " +
      "REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json or ~/.docker/config.json.\n" +
      "Example: transient image pull alpine,https=https://example.org/alpine.qcow2.xz\n" +
      "Example: transient image pull fedora,oci=quay.io/containerdisks/fedora:40",
  ),
)

const formatOption = Options.choice("format", ["containerdisk", "artifact"] as const).pipe(
  Options.withDescription(
    "containerdisk: a container image holding disk/disk.img, as KubeVirt boots it; artifact: " +
      "an OCI artifact whose one layer is the zstd-compressed qcow2, as ORAS and Podman push disks",
  ),
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
    }).pipe(Effect.provide(storeLayer(backend, progress, {}, plainHttp)))
  ),
).pipe(
  Command.withDescription(
    "Push an image from the store to an OCI registry, as a KubeVirt containerDisk (default) or " +
      "an OCI artifact, and print REF@sha256:DIGEST. Blobs the registry has are not sent again. " +
      "Credentials come from REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json or " +
      "~/.docker/config.json; loopback registries and TRANSIENT_INSECURE_REGISTRIES get plain " +
      "HTTP.\nExample: transient image push web ghcr.io/example/web-disk:1.0",
  ),
)

export const imageCommand = Command.make("image").pipe(
  Command.withDescription(
    "Manage the image store: the base images builds start FROM and the images they produce.\n" +
      "Example: transient image pull generic/alpine38:v3.0.2",
  ),
  Command.withSubcommands([lsCommand, rmCommand, pullCommand, pushCommand, imageBuildCommand]),
)
