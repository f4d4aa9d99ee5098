/**
 * ImageStore in memory: names map to SimDisks in the MemoryWorld. It takes and refuses the names
 * the directory store does, misses them with the same errors (src/domain/image_name.ts,
 * image_source.ts), and keeps its records as text read by the same rules (store_record.ts).
 * Working images live under `.working/` and vanish when their scope closes without a commit.
 * It fetches only what its `fetch` option fetches (a test's composition of the registry's pull
 * over RegistryMemory, say); without one, a source other than a disk in the world is unavailable.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import {
  ImageExists,
  ImageNotInStore,
  SourceFileMissing,
  SourceUnavailable,
  StoreIoError,
} from "../../domain/errors/store.ts"
import { checkImageName, compareImageNames } from "../../domain/image_name.ts"
import { type FetchableSource, fetchableSource } from "../../domain/image_source.ts"
import { encodeImageName, type ImageSpec, parseImageSpec } from "../../domain/image_spec.ts"
import { formatOciReference } from "../../domain/oci_reference.ts"
import {
  currentRecord,
  type FileStamp,
  recordedProvenance,
  STORE_RECORDS,
  type StoreRecord,
  storeRecordFileName,
  StoreRecordJson,
} from "../../domain/store_record.ts"
import {
  ImageStore,
  type ImageStoreShape,
  type PublishTarget,
  type StoredImage,
} from "../../services/image_store.ts"
import { usedBytes } from "./disk_images_memory.ts"
import type { MemoryWorld, SimDisk } from "./world.ts"

const decodeRecord = Schema.decodeEither(StoreRecordJson)
const encodeRecord = Schema.encodeSync(StoreRecordJson)

/** Where a source would be fetched from, as the directory store names it in messages. */
const locationOf = (source: FetchableSource): string => {
  switch (source._tag) {
    case "File":
      return source.path
    case "Http":
      return source.url
    case "Vagrant":
      return `Vagrant box ${source.box.box}:${source.box.version}`
    case "Oci":
      return formatOciReference(source.reference)
  }
}

/** The store's failures when it resolves a spec. */
type ResolveError = Effect.Effect.Error<ReturnType<ImageStoreShape["resolve"]>>

export interface ImageStoreMemoryOptions {
  /** Put the disk of `spec` (from `source`) at `path` in the world, as a pull would. */
  readonly fetch?: (
    spec: ImageSpec,
    source: FetchableSource,
    path: string,
  ) => Effect.Effect<void, ResolveError>
}

// Long: the store's operations, each short, share its world and records.
export const ImageStoreMemory = (world: MemoryWorld, options: ImageStoreMemoryOptions = {}) => {
  let counter = 0
  /** Each disk object stands for one file: its number plays the inode in records' stamps. */
  const inodes = new WeakMap<SimDisk, number>()
  const pathOf = (name: string) => `${world.storeRoot}/${encodeImageName(name)}`
  const recordPath = (name: string) =>
    `${world.storeRoot}/${STORE_RECORDS}/${storeRecordFileName(name)}`
  const stored = (name: string, path: string): StoredImage => {
    const disk = world.disks.get(path)
    return {
      name,
      path,
      format: "qcow2",
      virtualSize: disk?.sizeBytes ?? 0,
      actualSize: disk ? usedBytes(disk) : 0,
    }
  }
  const stampOf = (image: StoredImage): FileStamp | undefined => {
    const disk = world.disks.get(image.path)
    if (disk === undefined) return undefined
    const ino = inodes.get(disk) ?? ++counter
    inodes.set(disk, ino)
    return { size: disk.sizeBytes, ino, mtimeMs: 0 }
  }
  /** The image's record, when it was made for the disk the image is now; a corrupt one is none. */
  const recordOf = (image: StoredImage) => {
    const stamp = stampOf(image)
    if (stamp === undefined) return undefined
    const text = world.files.get(recordPath(image.name))
    const record = text === undefined ? undefined : Either.getOrUndefined(decodeRecord(text))
    return { stamp, recorded: currentRecord(record, stamp) }
  }
  const writeRecord = (image: StoredImage, record: StoreRecord) =>
    world.files.set(recordPath(image.name), encodeRecord(record))
  const exists = (target: PublishTarget) =>
    target._tag === "Store" ? world.images.has(target.name) : world.disks.has(target.path)

  /** The image `spec` names, when the store holds it; else why it cannot be had. */
  const find = (spec: ImageSpec) => {
    const path = world.images.get(spec.name)
    if (path !== undefined) return Either.right(stored(spec.name, path))
    return Either.flatMap(fetchableSource(spec), (source) =>
      Either.left(
        source._tag === "File"
          ? new SourceFileMissing({ image: spec.name, path: source.path })
          : new SourceUnavailable({
            image: spec.name,
            protocol: "http",
            location: locationOf(source),
            detail: "the memory store downloads nothing",
          }),
      ))
  }

  const shape: ImageStoreShape = {
    root: world.storeRoot,
    resolve: (text) =>
      Effect.gen(function* () {
        const spec = yield* parseImageSpec(text)
        const found = find(spec)
        const fetch = options.fetch
        if (
          fetch === undefined || Either.isRight(found) || found.left._tag !== "SourceUnavailable"
        ) {
          return yield* found
        }
        const path = pathOf(spec.name)
        yield* fetch(spec, yield* fetchableSource(spec), path)
        world.images.set(spec.name, path)
        return stored(spec.name, path)
      }),
    lookup: (text) =>
      Effect.flatMap(parseImageSpec(text), (spec) => {
        const found = (present: boolean) => ({ name: spec.name, present })
        if (world.images.has(spec.name)) return Effect.succeed(found(true))
        return Effect.flatMap(fetchableSource(spec), (source) =>
          source._tag === "File" && !world.disks.has(source.path)
            ? new SourceFileMissing({ image: spec.name, path: source.path })
            : Effect.succeed(found(false)))
      }),
    begin: (target, { force }) =>
      Effect.gen(function* () {
        if (target._tag === "Store") yield* checkImageName(target.name)
        const finalPath = target._tag === "Store" ? pathOf(target.name) : target.path
        if (exists(target) && !force) {
          return yield* new ImageExists({ name: target.name, path: finalPath })
        }
        counter += 1
        const path = `${world.storeRoot}/.working/${counter}-${encodeImageName(target.name)}`
        let committed = false
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            if (committed) return
            world.disks.delete(path)
            world.record({ op: "discard", path })
          })
        )
        const commit = Effect.suspend(
          (): Effect.Effect<StoredImage, StoreIoError | ImageExists> => {
            if (exists(target) && !force) {
              return Effect.fail(new ImageExists({ name: target.name, path: finalPath }))
            }
            const disk = world.disks.get(path)
            if (!disk) {
              return Effect.fail(
                new StoreIoError({
                  operation: "publish",
                  image: target.name,
                  path: finalPath,
                  cause: "the working image was never written",
                }),
              )
            }
            committed = true
            world.disks.delete(path)
            world.disks.set(finalPath, disk)
            if (target._tag === "Store") world.images.set(target.name, finalPath)
            world.record({ op: "publish", name: target.name, path: finalPath })
            return Effect.succeed(stored(target.name, finalPath))
          },
        )
        return { path, target, commit }
      }),
    list: Effect.sync(() =>
      [...world.images].map(([name, path]) => stored(name, path)).sort((a, b) =>
        compareImageNames(a.name, b.name)
      )
    ),
    identity: (image) =>
      Effect.suspend(() => {
        const record = recordOf(image)
        if (record === undefined) {
          return new StoreIoError({
            operation: "read",
            image: image.name,
            path: image.path,
            cause: "no such image",
          })
        }
        if (record.recorded.identity !== undefined) return Effect.succeed(record.recorded.identity)
        // Stands for the digest of the file: new for each disk, as a digest is for other bytes.
        const identity = `sha256:${crypto.randomUUID()}`
        writeRecord(image, { identity, ...record.stamp })
        return Effect.succeed(identity)
      }),
    remember: (image, identity, provenance) =>
      Effect.sync(() => {
        const stamp = stampOf(image)
        if (stamp !== undefined) writeRecord(image, { identity, ...stamp, ...(provenance ?? {}) })
      }),
    provenance: (image) => Effect.sync(() => recordedProvenance(recordOf(image)?.recorded ?? {})),
    note: (image, key, value) =>
      Effect.sync(() => {
        const record = recordOf(image)
        if (record === undefined) return
        const { stamp, recorded } = record
        writeRecord(image, { ...recorded, ...stamp, notes: { ...recorded.notes, [key]: value } })
      }),
    noted: (image, key) => Effect.sync(() => recordOf(image)?.recorded.notes?.[key]),
    remove: (name) =>
      Effect.gen(function* () {
        yield* checkImageName(name)
        const path = world.images.get(name)
        if (path === undefined) {
          return yield* new ImageNotInStore({ image: name, store: world.storeRoot })
        }
        world.images.delete(name)
        world.disks.delete(path)
        world.files.delete(recordPath(name))
      }),
  }
  return Layer.succeed(ImageStore, shape)
}
