/**
 * Reading an Imagefile from disk for the use cases that need a valid one, with the digest of
 * its bytes that the built image records.
 */
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { createHash } from "node:crypto"
import { FileUnreadable, InvalidImagefile } from "../domain/errors/imagefile.ts"
import { analyzeImagefile, type Imagefile, renderDiagnostics } from "../domain/imagefile/mod.ts"

const REASONS: Record<string, string> = {
  NotFound: "no such file",
  PermissionDenied: "permission denied",
}

const unreadable = (path: string) => (error: PlatformError): FileUnreadable =>
  new FileUnreadable({
    path,
    reason: error._tag === "SystemError" ? REASONS[error.reason] ?? error.message : error.message,
  })

/** The largest Imagefile read (a real one is a few KiB). */
export const MAX_IMAGEFILE_BYTES = 1024 * 1024

/** The bytes of the file at `path`; a missing or unreadable file is a FileUnreadable. */
const readImagefileBytes = Effect.fn("Imagefile.readBytes")(function* (path: string) {
  const fs = yield* FileSystem.FileSystem
  const info = yield* fs.stat(path).pipe(
    Effect.mapError(unreadable(path)),
  )
  if (info.type === "Directory") {
    return yield* new FileUnreadable({ path, reason: "it is a directory" })
  }
  // A FIFO would block and a device (/dev/zero) never end: only files are read.
  if (info.type !== "File") {
    return yield* new FileUnreadable({ path, reason: "it is not a regular file" })
  }
  if (Number(info.size) > MAX_IMAGEFILE_BYTES) {
    return yield* new FileUnreadable({
      path,
      reason: `it is larger than ${
        MAX_IMAGEFILE_BYTES / 1024 / 1024
      } MiB, the limit of an Imagefile`,
    })
  }
  return yield* fs.readFile(path).pipe(
    Effect.mapError(unreadable(path)),
  )
})

/** The text of the file at `path`; a missing or unreadable file is a FileUnreadable. */
export const readImagefile = Effect.fn("Imagefile.read")(function* (path: string) {
  return new TextDecoder().decode(yield* readImagefileBytes(path))
})

/** `sha256:HEX` of `bytes`, as OCI digests are written. */
const sha256Digest = (bytes: Uint8Array): string =>
  `sha256:${createHash("sha256").update(bytes).digest("hex")}`

/** A valid Imagefile and the digest of the bytes it was parsed from. */
export interface LoadedImagefile {
  readonly imagefile: Imagefile
  readonly digest: string
}

/**
 * Read (once), parse and validate the Imagefile at `path`. Errors fail with InvalidImagefile
 * carrying the rendered diagnostics; warnings of a valid file go to stderr.
 */
export const loadImagefile = Effect.fn("Imagefile.load")(function* (path: string) {
  const bytes = yield* readImagefileBytes(path)
  const text = new TextDecoder().decode(bytes)
  const { imagefile, diagnostics } = analyzeImagefile(text, path)
  const errors = diagnostics.filter((diagnostic) => diagnostic.severity === "error")
  if (errors.length > 0) {
    return yield* new InvalidImagefile({
      file: path,
      count: errors.length,
      rendered: renderDiagnostics(diagnostics, text),
    })
  }
  if (diagnostics.length > 0) yield* Console.error(renderDiagnostics(diagnostics, text))
  const loaded: LoadedImagefile = { imagefile: imagefile as Imagefile, digest: sha256Digest(bytes) }
  return loaded
})
