/**
 * Where a directory store keeps things, compatible with the original transient: one file per
 * image, named by `encodeImageName`, in the backend directory; partial work in `.working/`.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import { encodeImageName } from "../../domain/image_spec.ts"
import { StoreIoError } from "../../domain/errors/store.ts"
import { DiskImages } from "../../services/disk_images.ts"
import type { StoredImage } from "../../services/image_store.ts"
import { lockFileName, WORKING } from "./working_dir.ts"

export interface StoreLayout {
  /** The backend directory, absolute. */
  readonly root: string
  /** `.working/` in it: the same file system, so that publishing is a rename. */
  readonly working: string
  /** The published file of the image `name`. */
  readonly pathOf: (name: string) => string
  /** The lock file of the image `name`. */
  readonly lockOf: (name: string) => string
}

export const storeLayout = (backend: string): Effect.Effect<StoreLayout, never, Path.Path> =>
  Effect.map(Path.Path, (path) => {
    const root = path.resolve(backend)
    const working = path.join(root, WORKING)
    return {
      root,
      working,
      pathOf: (name) => path.join(root, encodeImageName(name)),
      lockOf: (name) => path.join(working, lockFileName(encodeImageName(name))),
    }
  })

/** Whether the image `name` is at `file`. */
export const isStored = (
  layout: StoreLayout,
  name: string,
  file: string,
): Effect.Effect<boolean, StoreIoError, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.exists(file)).pipe(
    Effect.mapError((cause) =>
      new StoreIoError({ operation: "look up", image: name, path: layout.root, cause })
    ),
  )

/** The image `name` at `file`, as qemu-img describes it. */
export const storedImage = (name: string, file: string) =>
  Effect.flatMap(DiskImages, (disks) => disks.info(file, "qcow2")).pipe(
    Effect.map((info): StoredImage => ({
      name,
      path: file,
      format: info.format,
      virtualSize: info.virtualSize,
      actualSize: info.actualSize,
    })),
  )
