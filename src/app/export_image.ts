/**
 * `transient image export NAME PATH`: write an image (from the store, or a qcow2 file) as PATH
 * in another format — raw, VMDK, VHDX, VHD, an OVA — for the platforms that run them. qemu-img
 * writes the disk (skipping what is unallocated or zero, so the time follows the used bytes);
 * an OVA's tar is then written around the disk in one pass that also hashes it.
 *
 * Everything is written to temporary files beside PATH, renamed to PATH at the end: a failed or
 * interrupted export leaves nothing, as scope finalizers remove the temporaries.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import { concatBytes } from "../domain/bytes.ts"
import { ExportFailed, isNoSpace } from "../domain/errors/export.ts"
import {
  convertTarget,
  type ExportFormat,
  exportGrowth,
  type VmdkSubformat,
} from "../domain/export_format.ts"
import type { Firmware } from "../domain/firmware.ts"
import {
  ovaManifest,
  ovaMemberNames,
  ovfEnvelope,
  tarEnd,
  tarPadding,
  ustarHeader,
} from "../domain/ova_package.ts"
import { DiskImages } from "../services/disk_images.ts"
import { ImageStore } from "../services/image_store.ts"
import { Reporter, shownAsProgress } from "../services/reporter.ts"

/** The virtual machine an OVA describes (the other formats are the disk alone). */
export interface OvaMachine {
  readonly cpus: number
  readonly memoryMiB: number
  /** Default: the one the disk boots with (DiskImages.firmware). */
  readonly firmware?: Firmware
}

export interface ExportTarget {
  /** Where the export goes; replaced at once when it is done. */
  readonly path: string
  readonly format: ExportFormat
  readonly vmdkSubformat?: VmdkSubformat
  readonly machine: OvaMachine
}

export interface ExportImageRequest extends ExportTarget {
  /** A path to a qcow2 file, or an image spec for the store (pulled first if it says from where). */
  readonly image: string
}

/** The file `image` names: itself when it is a file, else the store's image of that spec. */
const sourceFile = Effect.fn("exportImage.sourceFile")(function* (image: string) {
  const fs = yield* FileSystem.FileSystem
  const isFile = yield* fs.stat(image).pipe(
    Effect.map((info) => info.type === "File"),
    Effect.orElseSucceed(() => false),
  )
  if (isFile) return image
  const store = yield* ImageStore
  return (yield* store.resolve(image)).path
})

/** A full disk reads as such, naming the export; other write failures keep their reason. */
const asExportFailure = (path: string) => (error: { readonly message: string }) =>
  new ExportFailed({
    path,
    reason: isNoSpace(error.message) ? "no space left on the device" : error.message,
    cause: error,
  })

/**
 * A fresh name beside `path` (same directory, so the last rename is atomic) for `suffix`; the
 * file there, if any, is removed when the scope closes.
 */
const temporaryBeside = Effect.fn("exportImage.temporaryBeside")(function* (
  path: string,
  suffix: string,
) {
  const fs = yield* FileSystem.FileSystem
  const paths = yield* Path.Path
  const temporary = paths.join(
    paths.dirname(path),
    `.${paths.basename(path)}.${crypto.randomUUID().slice(0, 8)}.${suffix}`,
  )
  return yield* Effect.acquireRelease(
    Effect.succeed(temporary),
    () => fs.remove(temporary).pipe(Effect.ignore),
  )
})

const sha256Hex = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

/**
 * The OVA at `out`: the OVF envelope, the disk (streamed once, hashed on the way), and the
 * manifest of both digests.
 */
const packOva = Effect.fn("exportImage.packOva")(function* (options: {
  readonly disk: string
  readonly out: string
  readonly path: string
  readonly capacityBytes: number
  readonly machine: OvaMachine & { readonly firmware: Firmware }
}) {
  const fs = yield* FileSystem.FileSystem
  const reporter = yield* Reporter
  const members = ovaMemberNames(options.path)
  const diskBytes = Number((yield* fs.stat(options.disk)).size)
  const ovf = new TextEncoder().encode(ovfEnvelope({
    ...options.machine,
    name: members.name,
    diskFile: members.disk,
    capacityBytes: options.capacityBytes,
    diskFileBytes: diskBytes,
  }))
  const modified = Math.floor((yield* Clock.currentTimeMillis) / 1000)
  const file = yield* fs.open(options.out, { flag: "w" })
  yield* file.writeAll(concatBytes([
    ustarHeader(members.ovf, ovf.length, modified),
    ovf,
    tarPadding(ovf.length),
    ustarHeader(members.disk, diskBytes, modified),
  ]))
  const diskHash = createHash("sha256")
  const progress = yield* reporter.progress(`Packing ${members.name}.ova`, diskBytes)
  yield* fs.stream(options.disk, { chunkSize: FileSystem.MiB(1) }).pipe(
    // The chunk is hashed while the OS writes it.
    Stream.runForEach((chunk) =>
      Effect.zip(file.writeAll(chunk), Effect.sync(() => diskHash.update(chunk)), {
        concurrent: true,
      }).pipe(Effect.zipRight(progress.advance(chunk.length)))
    ),
    Effect.ensuring(progress.done),
  )
  const manifest = new TextEncoder().encode(ovaManifest([
    { file: members.ovf, sha256: sha256Hex(ovf) },
    { file: members.disk, sha256: diskHash.digest("hex") },
  ]))
  yield* file.writeAll(concatBytes([
    tarPadding(diskBytes),
    ustarHeader(members.manifest, manifest.length, modified),
    manifest,
    tarPadding(manifest.length),
    tarEnd(),
  ]))
  yield* file.sync
}, Effect.scoped)

/**
 * Write the qcow2 `source` as `target.path` in `target.format`, through temporaries beside it
 * (removed however this ends), renamed into place once complete.
 */
export const writeExport = Effect.fn("writeExport")(
  function* (source: string, target: ExportTarget) {
    const disks = yield* DiskImages
    const fs = yield* FileSystem.FileSystem
    const paths = yield* Path.Path
    const reporter = yield* Reporter
    const { path, format } = target
    const info = yield* disks.info(source, "qcow2")
    const output = yield* temporaryBeside(path, "part")
    // A fixed VHD must be a whole MiB: qemu-img writes a larger overlay's size, its tail zeros.
    const grownSize = exportGrowth(format, info.virtualSize)
    const from = grownSize === undefined ? source : yield* temporaryBeside(path, "grown.qcow2")
    if (grownSize !== undefined) {
      yield* disks.overlay({ path: from, backing: source, sizeBytes: grownSize })
    }
    const disk = format === "ova" ? yield* temporaryBeside(path, "vmdk") : output
    const what = format === "ova" ? "a streamOptimized VMDK" : format
    yield* shownAsProgress(
      reporter,
      `Converting ${paths.basename(path)} to ${what}`,
      info.virtualSize,
      "convert",
      (onProgress) =>
        disks.convert({
          from,
          to: disk,
          fromFormat: "qcow2",
          target: convertTarget(format, target.vmdkSubformat),
          onProgress,
        }),
    )
    if (format === "ova") {
      const firmware = target.machine.firmware ?? (yield* disks.firmware(source))
      yield* packOva({
        disk,
        out: output,
        path,
        capacityBytes: info.virtualSize,
        machine: { ...target.machine, firmware },
      })
    }
    yield* fs.rename(output, path)
  },
  (effect, _source, target) =>
    effect.pipe(
      Effect.catchTags({
        // qemu-img's own failures (an unreadable source) say what they are, unless the disk is full.
        DiskImageError: (error) =>
          Effect.fail(isNoSpace(error.reason) ? asExportFailure(target.path)(error) : error),
        SystemError: (error) => Effect.fail(asExportFailure(target.path)(error)),
        BadArgument: (error) => Effect.fail(asExportFailure(target.path)(error)),
      }),
      Effect.scoped,
    ),
)

export const exportImage = Effect.fn("exportImage")(function* (request: ExportImageRequest) {
  const source = yield* sourceFile(request.image)
  yield* writeExport(source, request)
  return { path: request.path, format: request.format }
})
