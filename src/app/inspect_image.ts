/**
 * `transient image inspect NAME`: what the store knows of one image — its file and sizes, the
 * firmware it boots with, and where it came from (the Imagefile's digest, when it was built,
 * and the container images its ADDs unpacked, with their digests and configs).
 */
import * as Effect from "effect/Effect"
import type { Firmware } from "../domain/firmware.ts"
import type { BuildProvenance } from "../domain/store_record.ts"
import { ImageStore, type StoredImage } from "../services/image_store.ts"
import { storedFirmware } from "./image_firmware.ts"
import { storedImageNamed } from "./stored_image.ts"

export interface ImageDetails {
  readonly image: StoredImage
  readonly firmware: Firmware
  /** Undefined for an image that was not built here (pulled, or put in the store by hand). */
  readonly provenance: BuildProvenance | undefined
}

export const inspectImage = Effect.fn("inspectImage")(function* (name: string) {
  const image = yield* storedImageNamed(name, "inspect")
  const store = yield* ImageStore
  return {
    image,
    firmware: yield* storedFirmware(image),
    provenance: yield* store.provenance(image),
  } satisfies ImageDetails
})
