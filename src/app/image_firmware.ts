/**
 * The firmware a stored image boots with (bios or uefi), read from its disk once and then noted
 * in the store beside it, until the image is replaced.
 */
import * as Effect from "effect/Effect"
import type { Firmware } from "../domain/firmware.ts"
import { FIRMWARES } from "../domain/firmware.ts"
import { DiskImages } from "../services/disk_images.ts"
import { ImageStore, type StoredImage } from "../services/image_store.ts"

/** The store note that holds it. */
const FIRMWARE_NOTE = "firmware"

const isFirmware = (value: string | undefined): value is Firmware =>
  FIRMWARES.some((firmware) => firmware === value)

export const storedFirmware = Effect.fn("storedFirmware")(function* (image: StoredImage) {
  const store = yield* ImageStore
  const noted = yield* store.noted(image, FIRMWARE_NOTE)
  if (isFirmware(noted)) return noted
  const disks = yield* DiskImages
  const firmware = yield* disks.firmware(image.path)
  yield* store.note(image, FIRMWARE_NOTE, firmware)
  return firmware
})

/** The images of the store, each with the firmware it boots with. */
export const listImages = Effect.fn("listImages")(function* () {
  const store = yield* ImageStore
  const images = yield* store.list
  return yield* Effect.forEach(
    images,
    (image) => Effect.map(storedFirmware(image), (firmware) => ({ ...image, firmware })),
  )
})
