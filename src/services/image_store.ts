/**
 * ImageStore: where base images come from and where built images go.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { BuildProvenance } from "../domain/store_record.ts"
import type { NotADiskImage, RegistryError } from "../domain/errors/registry.ts"
import type {
  DiskImageError,
  ImageExists,
  ImageNotFound,
  ImageNotInStore,
  InvalidImageName,
  InvalidImageSpec,
  SourceFileMissing,
  StoreError,
  StoreIoError,
} from "../domain/errors/store.ts"

/** An image held by the store. */
export interface StoredImage {
  readonly name: string
  readonly path: string
  readonly format: string
  readonly virtualSize: number
  readonly actualSize: number
}

/** Where a build publishes: the store, or `BUILD_DIR/NAME.qcow2` with `--local`. */
export type PublishTarget =
  | { readonly _tag: "Store"; readonly name: string }
  | { readonly _tag: "Local"; readonly name: string; readonly path: string }

/**
 * A file being written for `target`. The file at `path` is private to this build; `commit`
 * publishes it by atomic rename. When the scope closes without a commit, the file is removed
 * and whatever was published under the name before is left as it was.
 */
export interface WorkingImage {
  readonly path: string
  readonly target: PublishTarget
  readonly commit: Effect.Effect<StoredImage, StoreIoError | ImageExists | DiskImageError>
}

export interface ImageStoreShape {
  /** The store's directory (for messages). */
  readonly root: string
  /**
   * Resolve a FROM spec to a local, read-only qcow2, fetching it (with progress) when the store
   * lacks it. Concurrent resolutions of the same name fetch once.
   */
  readonly resolve: (
    spec: string,
  ) => Effect.Effect<
    StoredImage,
    InvalidImageSpec | StoreError | RegistryError | NotADiskImage | DiskImageError
  >
  /**
   * Like `resolve`, but only looks: never downloads (used by `build --dry-run`). Fails when the
   * store lacks the image and the spec names no source it could be fetched from.
   */
  readonly lookup: (
    spec: string,
  ) => Effect.Effect<
    { readonly name: string; readonly present: boolean },
    InvalidImageSpec | ImageNotFound | SourceFileMissing
  >
  /**
   * Start writing an image for `target`. Fails at once with ImageExists when the name is taken
   * and `force` is false (and again at commit, if it was taken meanwhile).
   */
  readonly begin: (
    target: PublishTarget,
    options: { readonly force: boolean },
  ) => Effect.Effect<WorkingImage, InvalidImageName | ImageExists | StoreIoError, Scope.Scope>
  readonly list: Effect.Effect<ReadonlyArray<StoredImage>, StoreIoError | DiskImageError>
  /**
   * What stands for the content of a stored image in step-cache keys: what was recorded when it
   * entered the store, else (an image put there by hand or by an older version) the sha256 of
   * its file, recorded then. A record whose file was replaced since is not trusted.
   */
  readonly identity: (image: StoredImage) => Effect.Effect<string, StoreIoError>
  /**
   * Record `identity` (and, for a build, where it came from) for an image just published; best
   * effort: `identity` can recompute.
   */
  readonly remember: (
    image: StoredImage,
    identity: string,
    provenance?: BuildProvenance,
  ) => Effect.Effect<void>
  /** Where the image came from, when it was built here and has not been replaced since. */
  readonly provenance: (image: StoredImage) => Effect.Effect<BuildProvenance | undefined>
  /**
   * A fact derived from the image's content (the digest of its containerDisk layer), kept until
   * the image is replaced: `noted` gives it back, or undefined. Best effort, like `remember`.
   */
  readonly note: (image: StoredImage, key: string, value: string) => Effect.Effect<void>
  readonly noted: (image: StoredImage, key: string) => Effect.Effect<string | undefined>
  /** Remove one image by name; fails with ImageNotInStore when it is not there. */
  readonly remove: (
    name: string,
  ) => Effect.Effect<void, InvalidImageName | ImageNotInStore | StoreIoError>
}

export type { BuildProvenance }

/** The most a pulled image may have once decompressed, unless told: 256 GiB, more than any base
 * image, less than a decompression bomb would write. */
export const DEFAULT_MAX_IMAGE_BYTES = 256 * 1024 ** 3

export class ImageStore extends Context.Tag("transient/ImageStore")<
  ImageStore,
  ImageStoreShape
>() {}
