/**
 * DiskImages: the qcow2 files a build works on (qemu-img in production).
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { DiskImageError } from "../domain/errors/store.ts"
import type { ConvertTarget } from "../domain/export_format.ts"
import type { Firmware } from "../domain/firmware.ts"

export interface DiskImageInfo {
  readonly path: string
  readonly format: string
  readonly virtualSize: number
  readonly actualSize: number
  readonly backingFile?: string
}

export interface DiskImagesShape {
  /** A new, empty qcow2 of `sizeBytes`. */
  readonly create: (
    options: { readonly path: string; readonly sizeBytes: number },
  ) => Effect.Effect<void, DiskImageError>
  /**
   * A qcow2 at `path` whose reads fall through to `backing`, which is never written; of
   * `sizeBytes` when given (larger than `backing`: the rest reads as zeros).
   */
  readonly overlay: (
    options: { readonly path: string; readonly backing: string; readonly sizeBytes?: number },
  ) => Effect.Effect<void, DiskImageError>
  /**
   * Make the qcow2 at `path` name `backing` as its backing file, changing only its header: the
   * new backing file must hold what the old one did. A relative name is relative to `path`.
   */
  readonly rebase: (
    options: { readonly path: string; readonly backing: string },
  ) => Effect.Effect<void, DiskImageError>
  /**
   * Write `from` (any format qemu-img reads, backing chain included) as a standalone file in
   * `target` (default: qcow2); `onProgress` is told the fraction done (0 to 1) as it goes.
   */
  readonly convert: (
    options: {
      readonly from: string
      readonly to: string
      readonly fromFormat?: string
      readonly target?: ConvertTarget
      readonly onProgress?: (fraction: number) => Effect.Effect<void>
    },
  ) => Effect.Effect<void, DiskImageError>
  /** Write `from` compressed with zstd to `to` (as an OCI artifact's disk layer is sent). */
  readonly compress: (
    options: { readonly from: string; readonly to: string },
  ) => Effect.Effect<void, DiskImageError>
  /**
   * Check the structure of the qcow2 at `path` (a download cut short, a damaged file); fails
   * with what is wrong. Leaked clusters are harmless and pass.
   */
  readonly check: (path: string) => Effect.Effect<void, DiskImageError>
  /**
   * The firmware the qcow2 at `path` boots with, from its partition table and boot code
   * (domain/firmware.ts).
   */
  readonly firmware: (path: string) => Effect.Effect<Firmware, DiskImageError>
  /** What `path` is; read as `format` when given (a file of unknown origin must not be probed). */
  readonly info: (path: string, format?: string) => Effect.Effect<DiskImageInfo, DiskImageError>
}

export class DiskImages extends Context.Tag("transient/DiskImages")<
  DiskImages,
  DiskImagesShape
>() {}
