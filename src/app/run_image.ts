/**
 * `transient run`: boot an image from the store (pulled first when its name says from where) or
 * a qcow2 file, on a throw-away overlay.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import { RunFailed } from "../domain/errors/vm.ts"
import type { Firmware } from "../domain/firmware.ts"
import { DiskImages } from "../services/disk_images.ts"
import { ImageStore } from "../services/image_store.ts"
import { type RunOptions, VmRunner } from "../services/vm_runner.ts"

export interface RunImageRequest extends Omit<RunOptions, "image" | "firmware"> {
  /** A path to a qcow2 file, or an image spec for the store. */
  readonly image: string
  /** `auto`: the firmware the image needs, as its partitions say. */
  readonly firmware: Firmware | "auto"
}

/**
 * The qcow2 `image` names: itself when it is a file, else the store's image of that spec. Other
 * formats are refused before anything reads their partition table.
 */
const imageFile = Effect.fn("runImage.imageFile")(function* (image: string) {
  const fs = yield* FileSystem.FileSystem
  const isFile = yield* fs.stat(image).pipe(
    Effect.map((info) => info.type === "File"),
    Effect.orElseSucceed(() => false),
  )
  const file = isFile ? image : (yield* (yield* ImageStore).resolve(image)).path
  const info = yield* Effect.flatMap(DiskImages, (disks) => disks.info(file))
  if (info.format !== "qcow2") {
    return yield* new RunFailed({ reason: `${file} is ${info.format}, not qcow2` })
  }
  return file
})

/** The firmware to boot `file` (the file `request.image` names) with. */
const bootFirmware = Effect.fn("runImage.bootFirmware")(function* (
  file: string,
  request: RunImageRequest,
) {
  const firmware = request.firmware === "auto"
    ? yield* Effect.flatMap(DiskImages, (disks) => disks.firmware(file))
    : request.firmware
  if (request.secureBoot && firmware === "bios") {
    return yield* new RunFailed({
      reason: `--secure-boot needs UEFI firmware, and ${request.image} boots with BIOS ` +
        "(it has no EFI system partition, or has BIOS boot code)",
    })
  }
  return firmware
})

export const runImage = Effect.fn("runImage")(function* (request: RunImageRequest) {
  const image = yield* imageFile(request.image)
  const firmware = yield* bootFirmware(image, request)
  const runner = yield* VmRunner
  return yield* runner.run({ ...request, image, firmware })
})
