/**
 * `transient run`: boot an image from the store (pulled first when its name says from where) or
 * a qcow2 file, on a throw-away overlay.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import { ImageStore } from "../services/image_store.ts"
import { type RunOptions, VmRunner } from "../services/vm_runner.ts"

export interface RunImageRequest extends Omit<RunOptions, "image"> {
  /** A path to a qcow2 file, or an image spec for the store. */
  readonly image: string
}

/** The file `image` names: itself when it is a file, else the store's image of that spec. */
const imageFile = Effect.fn("runImage.imageFile")(function* (image: string) {
  const fs = yield* FileSystem.FileSystem
  const isFile = yield* fs.stat(image).pipe(
    Effect.map((info) => info.type === "File"),
    Effect.orElseSucceed(() => false),
  )
  if (isFile) return image
  const store = yield* ImageStore
  return (yield* store.resolve(image)).path
})

export const runImage = Effect.fn("runImage")(function* (request: RunImageRequest) {
  const image = yield* imageFile(request.image)
  const runner = yield* VmRunner
  return yield* runner.run({ ...request, image })
})
