/**
 * ImageStore in memory: names map to SimDisks in the MemoryWorld. Working images live under
 * `.working/` and vanish when their scope closes without a commit, like the directory store's.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ImageExists } from "../../domain/errors.ts"
import { ImageNotInStore, StoreIoError } from "../../domain/store_errors.ts"
import { encodeImageName } from "../../domain/image_spec.ts"
import { type BuildProvenance, ImageStore, type StoredImage } from "../../services/image_store.ts"
import { usedBytes } from "./disk_images_memory.ts"
import type { MemoryWorld } from "./world.ts"

export const ImageStoreMemory = (world: MemoryWorld) => {
  let counter = 0
  /** Disk path -> recorded identity; a disk without one gets one from its object. */
  const identities = new Map<string, string>()
  const provenances = new Map<string, BuildProvenance>()
  const notes = new Map<string, string>()
  const contents = new WeakMap<object, string>()
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
  const nameOf = (spec: string) => spec.split(",")[0] ?? spec
  const exists = (target: { _tag: string; name: string; path?: string }) =>
    target._tag === "Store"
      ? world.images.has(target.name)
      : target.path !== undefined && world.disks.has(target.path)

  return Layer.succeed(ImageStore, {
    root: world.storeRoot,
    resolve: (spec) => {
      const path = world.images.get(nameOf(spec))
      return path ? Effect.succeed(stored(nameOf(spec), path)) : Effect.fail(
        new ImageNotInStore({ image: nameOf(spec), store: world.storeRoot }),
      )
    },
    lookup: (spec) =>
      Effect.succeed({ name: nameOf(spec), present: world.images.has(nameOf(spec)) }),
    begin: (target, { force }) =>
      Effect.gen(function* () {
        const finalPath = target._tag === "Store"
          ? `${world.storeRoot}/${encodeImageName(target.name)}`
          : target.path
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
            identities.delete(finalPath)
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
        a.name.localeCompare(b.name)
      )
    ),
    identity: (image) =>
      Effect.sync(() => {
        const recorded = identities.get(image.path)
        if (recorded !== undefined) return recorded
        const disk = world.disks.get(image.path) ?? {}
        const known = contents.get(disk) ?? crypto.randomUUID()
        contents.set(disk, known)
        return known
      }),
    remember: (image, identity, provenance) =>
      Effect.sync(() => {
        identities.set(image.path, identity)
        if (provenance !== undefined) provenances.set(image.path, provenance)
      }),
    provenance: (image) => Effect.sync(() => provenances.get(image.path)),
    note: (image, key, value) => Effect.sync(() => void notes.set(`${image.path}\0${key}`, value)),
    noted: (image, key) => Effect.sync(() => notes.get(`${image.path}\0${key}`)),
    remove: (name) => {
      const path = world.images.get(name)
      if (!path) {
        return Effect.fail(new ImageNotInStore({ image: name, store: world.storeRoot }))
      }
      return Effect.sync(() => {
        world.images.delete(name)
        world.disks.delete(path)
        identities.delete(path)
      })
    },
  })
}
