/**
 * Pulling an image the store lacks: fetched into `.working/`, checked, converted to qcow2 and
 * only then published. The name's lock is held throughout, so concurrent pulls of one image, from
 * any number of processes, download it once.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import { encodeImageName, type ImageSpec } from "../../domain/image_spec.ts"
import { PROBE_BYTES, probeImageFormat } from "../../domain/image_format.ts"
import {
  ImageFormatRefused,
  ImageRefersToFile,
  NotEnoughSpace,
  StoreIoError,
} from "../../domain/errors/store.ts"
import { DiskImages } from "../../services/disk_images.ts"
import { Reporter, type ReporterShape, shownAsProgress } from "../../services/reporter.ts"
import { freeBytes } from "../host_process.ts"
import { download, type FetchLimits, NO_DISK_IN_LAYER, openSource } from "./download.ts"
import { type FetchSource, fetchSourceOf } from "./fetch_source.ts"
import { openOciLayer, resolveOciDisk } from "./oci_source.ts"
import { type Descriptor, diskCandidates } from "../../domain/oci_manifest.ts"
import { lockImageName } from "./locks.ts"
import { publishFile } from "./publish.ts"
import { isStored, storedImage, type StoreLayout } from "./store_layout.ts"
import { removeIfPresent, sweepStaleWork, workingFile } from "./working_dir.ts"

/** The strict probe of the file at `path`: its first bytes and its size. */
const probeFile = (path: string) =>
  Effect.scoped(Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const size = Number((yield* fs.stat(path)).size)
    const file = yield* fs.open(path, { flag: "r" })
    const head = new Uint8Array(Math.min(PROBE_BYTES, size))
    let filled = 0
    while (filled < head.length) {
      const read = Number(yield* file.read(head.subarray(filled)))
      if (read === 0) break
      filled += read
    }
    return probeImageFormat(head.subarray(0, filled), size)
  }))

/**
 * The disk of a registry image into `destination`: from its one artifact layer, or from the
 * last of a containerDisk's layers that has a file under `disk/`.
 */
const downloadOciDisk = (
  spec: ImageSpec,
  source: Extract<FetchSource, { readonly _tag: "Oci" }>,
  destination: string,
  limits: FetchLimits,
) =>
  Effect.gen(function* () {
    const disk = yield* resolveOciDisk(spec.name, source.reference)
    const [last, ...earlier] = diskCandidates(disk.layout)
    if (last === undefined) return
    const from = (layer: Descriptor) =>
      download(spec, source, openOciLayer(disk, layer), destination, limits)
    yield* earlier.reduce(
      (tried, layer) =>
        // A layer without a disk wrote nothing: try the one before it.
        Effect.catchIf(
          tried,
          (error) => error._tag === "NotADiskImage" && error.reason === NO_DISK_IN_LAYER,
          () => Effect.zipRight(Effect.ignore(removeIfPresent(destination)), from(layer)),
        ),
      from(last),
    )
  })

/**
 * The format of the image `name` downloaded (from `source`) to `downloaded`, once checked: a
 * format the probe accepts, a qcow2 whole, no backing file. And its sizes, as qemu-img reads them.
 */
const checkDownloaded = (
  reporter: ReporterShape,
  name: string,
  source: string,
  downloaded: string,
) =>
  Effect.gen(function* () {
    const disks = yield* DiskImages
    const probe = yield* probeFile(downloaded).pipe(
      Effect.mapError((cause) =>
        new StoreIoError({ operation: "read", image: name, path: downloaded, cause })
      ),
    )
    if (probe._tag === "Refused") {
      return yield* new ImageFormatRefused({ image: name, source, reason: probe.reason })
    }
    // A qcow2 cut short (a download without a length) still has a valid header: check it all.
    if (probe.format === "qcow2") {
      yield* shownAsProgress(
        reporter,
        `Checking '${name}'`,
        undefined,
        "verify",
        () => disks.check(downloaded),
      ).pipe(
        Effect.mapError((error) =>
          new ImageFormatRefused({ image: name, source, reason: error.reason })
        ),
      )
    }
    const info = yield* disks.info(downloaded, probe.format)
    // The probe refuses backing files already; qemu-img's own reading is a second line.
    if (info.backingFile !== undefined) {
      // Following it would read whatever host file the image names.
      return yield* new ImageRefersToFile({ image: name, source, file: info.backingFile })
    }
    return { format: probe.format, info }
  })

/** Fetch `spec` and publish it at `file`, unless another process did so first. */
export const pullImage = (
  layout: StoreLayout,
  spec: ImageSpec,
  file: string,
  limits: FetchLimits,
) =>
  Effect.scoped(Effect.gen(function* () {
    const disks = yield* DiskImages
    const reporter = yield* Reporter
    const name = spec.name
    yield* lockImageName(layout, name)
    // Another process may have published it while this one waited for the lock.
    if (yield* isStored(layout, name, file)) return yield* storedImage(name, file)
    const source = yield* fetchSourceOf(spec)
    yield* sweepStaleWork(layout.working).pipe(
      Effect.mapError((cause) =>
        new StoreIoError({ operation: "clean", image: name, path: layout.working, cause })
      ),
    )
    const ownWorkingFile = (kind: string) =>
      workingFile(layout.working, encodeImageName(name), kind).pipe(
        Effect.mapError((cause) =>
          new StoreIoError({ operation: "lock", image: name, path: layout.working, cause })
        ),
      )
    const downloaded = yield* ownWorkingFile("part")
    const converted = yield* ownWorkingFile("qcow2")
    yield* reporter.info(`Pulling '${name}' from ${source.describe}`)
    if (source._tag === "Oci") {
      yield* downloadOciDisk(spec, source, downloaded, limits)
    } else {
      const opened = yield* openSource(name, source, limits)
      yield* download(spec, source, opened, downloaded, limits)
    }
    const { format, info } = yield* checkDownloaded(reporter, name, source.describe, downloaded)
    // A qcow2 that passed the probe and `qemu-img check` is stored as it came: rewriting it would
    // cost as long again as the download. A raw image is converted.
    const stored = format === "qcow2" ? downloaded : converted
    if (format !== "qcow2") {
      // The qcow2 written next holds at most the data the download holds: check there is room,
      // rather than fail half-way through with a full disk.
      const free = yield* freeBytes(layout.working)
      if (free !== undefined && free < info.actualSize) {
        return yield* new NotEnoughSpace({
          image: name,
          path: layout.working,
          needed: info.actualSize,
          free,
        })
      }
      yield* shownAsProgress(
        reporter,
        `Converting '${name}' to qcow2`,
        info.virtualSize,
        "convert",
        (onProgress) =>
          disks.convert({ from: downloaded, to: converted, fromFormat: format, onProgress }),
      )
    }
    yield* publishFile(name, stored, file, { force: false, readOnly: true }).pipe(
      // Only this process writes the name while it holds the lock.
      Effect.catchTag("ImageExists", () => Effect.void),
    )
    return yield* storedImage(name, file)
  }))
