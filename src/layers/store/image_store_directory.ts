/**
 * ImageStoreDirectory: the ImageStore on a directory (the image backend), laid out as the
 * original transient lays it out (store_layout.ts). Images the store lacks are pulled (pull.ts);
 * built images are published through `begin`/`commit`, by atomic rename or link.
 */
import { readRecordFile } from "../record_file.ts"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Path from "@effect/platform/Path"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import {
  ImageExists,
  ImageNotInStore,
  SourceFileMissing,
  StoreIoError,
} from "../../domain/errors/store.ts"
import { checkImageName, compareImageNames } from "../../domain/image_name.ts"
import { decodeImageName, encodeImageName, parseImageSpec } from "../../domain/image_spec.ts"
import {
  currentRecord,
  type FileStamp,
  recordedProvenance,
  STORE_RECORDS,
  type StoreRecord,
  storeRecordFileName,
  StoreRecordJson,
} from "../../domain/store_record.ts"
import type { DiskImages } from "../../services/disk_images.ts"
import type { Registry } from "../../services/registry.ts"
import {
  type BuildProvenance,
  DEFAULT_MAX_IMAGE_BYTES,
  ImageStore,
  type ImageStoreShape,
  type PublishTarget,
  type StoredImage,
  type WorkingImage,
} from "../../services/image_store.ts"
import { Reporter } from "../../services/reporter.ts"
import { fetchSourceOf } from "./fetch_source.ts"
import { publishFile } from "./publish.ts"
import { networkTimeoutSetting } from "../network_reads.ts"
import { pullImage } from "./pull.ts"
import { isStored, storedImage, storeLayout } from "./store_layout.ts"
import { isNotFound, OWN_PID, ownedPath, sweepStale } from "../stale_files.ts"
import {
  besideFileName,
  isBesideFileName,
  removeIfPresent,
  sweepStaleWork,
  workingFileName,
} from "./working_dir.ts"

const DEFAULT_VAGRANT_URL = "https://vagrantcloud.com"

/** The sha256 of a file of `size` bytes, read as a stream, with progress as `label`. */
const fileSha256 = (file: string, size: number, label: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const reporter = yield* Reporter
    const progress = yield* reporter.progress(label, size, { phase: "verify" })
    const hash = createHash("sha256")
    yield* fs.stream(file).pipe(
      Stream.runForEach((chunk) =>
        Effect.zipRight(Effect.sync(() => hash.update(chunk)), progress.advance(chunk.length))
      ),
    )
    yield* progress.done
    return hash.digest("hex")
  })

export interface ImageStoreDirectoryOptions {
  /** The Vagrant Cloud API base; defaults to `$TRANSIENT_VAGRANT_URL`, else the public one. */
  readonly vagrantUrl?: string
  /** The most bytes a pulled image may have once decompressed; DEFAULT_MAX_IMAGE_BYTES if unset. */
  readonly maxImageBytes?: number
}

/** What the store runs on; resolved once, when the layer is built. */
export type ImageStoreDirectoryRequirements =
  | FileSystem.FileSystem
  | Path.Path
  | HttpClient.HttpClient
  | CommandExecutor.CommandExecutor
  | DiskImages
  | Registry
  | Reporter

const vagrantUrlConfig = Config.string("TRANSIENT_VAGRANT_URL").pipe(
  Config.withDefault(DEFAULT_VAGRANT_URL),
)

/**
 * The records of the images in the store at `root` (STORE_RECORDS): each image's identity,
 * provenance and notes, valid while the image's file is the one they were made for.
 */
const imageRecords = (fs: FileSystem.FileSystem, path: Path.Path, root: string) => {
  const records = path.join(root, STORE_RECORDS)
  const recordFile = (name: string) => path.join(records, storeRecordFileName(name))
  /** What the image's file is now: a record made for another file does not match. */
  const fileStamp = (file: string) =>
    Effect.map(fs.stat(file), (info): FileStamp => ({
      size: Number(info.size),
      ino: Option.getOrElse(info.ino, () => 0),
      mtimeMs: Option.getOrElse(Option.map(info.mtime, (date) => date.getTime()), () => 0),
    }))

  const writeRecord = (image: StoredImage, record: StoreRecord) =>
    Effect.gen(function* () {
      const file = recordFile(image.name)
      const temporary = `${file}.${OWN_PID}.${crypto.randomUUID()}.tmp`
      yield* fs.makeDirectory(records, { recursive: true })
      yield* fs.writeFileString(temporary, yield* Schema.encode(StoreRecordJson)(record))
      yield* fs.rename(temporary, file)
    }).pipe(Effect.ignore)

  const remember = (image: StoredImage, identity: string, provenance?: BuildProvenance) =>
    Effect.flatMap(
      Effect.orElseSucceed(fileStamp(image.path), () => undefined),
      (stamp) =>
        stamp === undefined
          ? Effect.void
          : writeRecord(image, { identity, ...stamp, ...(provenance ?? {}) }),
    )

  /** The image's record, when it was made for the file the image is now; a corrupt one is none. */
  const record = (image: StoredImage) =>
    Effect.gen(function* () {
      const stamp = yield* fileStamp(image.path).pipe(
        Effect.mapError((cause) =>
          new StoreIoError({ operation: "read", image: image.name, path: image.path, cause })
        ),
      )
      const recorded = yield* readRecordFile(recordFile(image.name)).pipe(
        Effect.flatMap(Schema.decode(StoreRecordJson)),
        Effect.option,
      )
      return { stamp, recorded: currentRecord(Option.getOrUndefined(recorded), stamp) }
    })

  const provenance = (image: StoredImage) =>
    record(image).pipe(
      Effect.map(({ recorded }) => recordedProvenance(recorded)),
      Effect.orElseSucceed(() => undefined),
    )

  const note = (image: StoredImage, key: string, value: string) =>
    record(image).pipe(
      Effect.flatMap(({ stamp, recorded }) =>
        writeRecord(image, { ...recorded, ...stamp, notes: { ...recorded.notes, [key]: value } })
      ),
      Effect.ignore,
    )

  const noted = (image: StoredImage, key: string) =>
    record(image).pipe(
      Effect.map(({ recorded }) => recorded.notes?.[key]),
      Effect.orElseSucceed(() => undefined),
    )

  return { recordFile, record, remember, provenance, note, noted }
}

// Long: the store's operations, each short, share its layout and context.
const makeImageStoreDirectory = Effect.fn("ImageStoreDirectory.make")(function* (
  backend: string,
  options: ImageStoreDirectoryOptions,
) {
  const context = yield* Effect.context<ImageStoreDirectoryRequirements>()
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const layout = yield* storeLayout(backend)
  const root = layout.root
  const vagrantUrl = options.vagrantUrl ?? (yield* vagrantUrlConfig)
  const timeout = yield* networkTimeoutSetting

  yield* fs.makeDirectory(layout.working, { recursive: true }).pipe(
    Effect.zipRight(sweepStaleWork(layout.working)),
    Effect.mapError((cause) => new StoreIoError({ operation: "open", path: root, cause })),
  )

  const resolve = Effect.fn("ImageStore.resolve")(function* (text: string) {
    const spec = yield* parseImageSpec(text)
    const file = layout.pathOf(spec.name)
    if (yield* isStored(layout, spec.name, file)) return yield* storedImage(spec.name, file)
    return yield* pullImage(layout, spec, file, {
      vagrantUrl,
      timeout,
      maxImageBytes: options.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES,
    })
  }, Effect.provide(context))

  const exists = (file: string, otherwise: boolean) =>
    fs.exists(file).pipe(Effect.orElseSucceed(() => otherwise))

  const lookup = Effect.fn("ImageStore.lookup")(function* (text: string) {
    const spec = yield* parseImageSpec(text)
    const present = yield* exists(layout.pathOf(spec.name), false)
    if (!present) {
      // Only what can be checked without fetching: a name that spells no source, a missing file.
      const source = yield* fetchSourceOf(spec)
      if (source._tag === "File" && !(yield* exists(source.path, true))) {
        return yield* new SourceFileMissing({ image: spec.name, path: source.path })
      }
    }
    return { name: spec.name, present }
  })

  const begin = Effect.fn("ImageStore.begin")(function* (
    target: PublishTarget,
    { force }: { readonly force: boolean },
  ) {
    const name = target.name
    if (target._tag === "Store") yield* checkImageName(name)
    const destination = target._tag === "Store" ? layout.pathOf(name) : path.resolve(target.path)
    if (!force && (yield* isStored(layout, name, destination))) {
      return yield* new ImageExists({ name, path: destination })
    }
    if (target._tag === "Local") {
      // The working copies of --local builds that were killed before they could remove them.
      yield* sweepStale(path.dirname(destination), isBesideFileName(path.basename(destination)))
        .pipe(Effect.ignore)
    }
    // Removed when the scope closes, unless published (moved to its final name) by then.
    const workPath = yield* ownedPath(
      target._tag === "Store"
        ? path.join(layout.working, workingFileName(encodeImageName(name), "qcow2"))
        : path.join(path.dirname(destination), besideFileName(path.basename(destination))),
    ).pipe(
      Effect.mapError((cause) =>
        new StoreIoError({ operation: "lock", image: name, path: destination, cause })
      ),
    )
    const commit = Effect.gen(function* () {
      yield* publishFile(name, workPath, destination, { force, readOnly: target._tag === "Store" })
      return yield* storedImage(name, destination)
    }).pipe(Effect.withSpan("ImageStore.commit"), Effect.provide(context))
    return { path: workPath, target, commit } satisfies WorkingImage
  }, Effect.provide(context))

  /** The image in the store file `fileName`; none when it is no (longer a) file. */
  const listed = (fileName: string) =>
    Effect.gen(function* () {
      const file = path.join(root, fileName)
      const isFile = yield* fs.stat(file).pipe(
        Effect.map((info) => info.type === "File"),
        Effect.catchIf(isNotFound, () => Effect.succeed(false)),
        Effect.mapError((cause) => new StoreIoError({ operation: "list", path: root, cause })),
      )
      if (!isFile) return undefined
      return yield* storedImage(decodeImageName(fileName), file).pipe(
        Effect.map((image): StoredImage | undefined => image),
        // Removed while we listed: not an error, just not there any more.
        Effect.catchTag("DiskImageError", (error) =>
          Effect.flatMap(
            exists(file, true),
            (still) => still ? Effect.fail(error) : Effect.succeed(undefined),
          )),
      )
    })

  const list = Effect.gen(function* () {
    const names = yield* fs.readDirectory(root).pipe(
      Effect.mapError((cause) => new StoreIoError({ operation: "list", path: root, cause })),
    )
    const images = yield* Effect.forEach(names.filter((name) => !name.startsWith(".")), listed)
    return images.filter((image) => image !== undefined).sort((a, b) =>
      compareImageNames(a.name, b.name)
    )
  }).pipe(Effect.withSpan("ImageStore.list"), Effect.provide(context))

  const remove = Effect.fn("ImageStore.remove")(function* (name: string) {
    // `..` would be the store's own parent.
    yield* checkImageName(name)
    const file = layout.pathOf(name)
    yield* fs.remove(file).pipe(
      Effect.mapError((cause) =>
        isNotFound(cause)
          ? new ImageNotInStore({ image: name, store: root })
          : new StoreIoError({ operation: "remove", image: name, path: file, cause })
      ),
    )
  })

  const { recordFile, record, remember, provenance, note, noted } = imageRecords(fs, path, root)

  const identity = Effect.fn("ImageStore.identity")(function* (image: StoredImage) {
    const { stamp, recorded } = yield* record(image)
    if (recorded.identity !== undefined) return recorded.identity
    const digest = yield* fileSha256(
      image.path,
      stamp.size,
      `Content digest of '${image.name}' (once, for the step cache)`,
    ).pipe(
      Effect.mapError((cause) =>
        new StoreIoError({ operation: "read", image: image.name, path: image.path, cause })
      ),
    )
    const computed = `sha256:${digest}`
    yield* remember(image, computed)
    return computed
  }, Effect.provide(context))

  return {
    root,
    resolve,
    lookup,
    begin,
    list,
    remove: (name: string) =>
      Effect.zipLeft(
        remove(name),
        removeIfPresent(recordFile(name)).pipe(Effect.ignore, Effect.provide(context)),
      ),
    identity,
    remember,
    provenance,
    note,
    noted,
  } satisfies ImageStoreShape
})

/** The ImageStore on the directory `backend` (created if missing). */
export const ImageStoreDirectory = (
  backend: string,
  options: ImageStoreDirectoryOptions = {},
): Layer.Layer<
  ImageStore,
  StoreIoError | ConfigError.ConfigError,
  ImageStoreDirectoryRequirements
> => Layer.effect(ImageStore, makeImageStoreDirectory(backend, options))
