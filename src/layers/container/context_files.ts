/**
 * The files of a container image source in the build context: an OCI layout directory's blobs,
 * and an archive's members, found by one pass over its tar headers and read in place by offset,
 * never extracted. Every path is resolved to its real path, and one a symlink leads out of the
 * build context is refused.
 */
import type { PlatformError } from "@effect/platform/Error"
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { memberName } from "../../domain/container_image.ts"
import {
  type ContainerImageError,
  ContainerImageNotFound,
  ContainerJsonMalformed,
  ContainerSourceUnreadable,
} from "../../domain/errors/container.ts"
import {
  blobName,
  type BlobStore,
  checkedDigest,
  collected,
  MAX_DOCUMENT_BYTES,
  verifiedDocument,
} from "./blob_store.ts"
import { indexTarMembers, isRegularMember, type TarMember } from "./tar_members.ts"

/** The files of sources in build contexts, read through `fs`. */
export const contextFiles = (fs: FileSystem.FileSystem, path: Path.Path) => {
  const unreadable = (source: string, at: string) => (error: PlatformError) =>
    error._tag === "SystemError" && error.reason === "NotFound"
      ? new ContainerImageNotFound({ source, missing: `file ${at}` })
      : new ContainerSourceUnreadable({ source, path: at, reason: error.message })

  /** The real path of `relative` (in the build context), refused if a symlink leads out. */
  const confined = (source: string, contextDir: string, relative: string) =>
    Effect.gen(function* () {
      const context = yield* fs.realPath(contextDir).pipe(
        Effect.mapError(unreadable(source, contextDir)),
      )
      const real = yield* fs.realPath(path.join(context, relative)).pipe(
        Effect.mapError(unreadable(source, relative)),
      )
      if (real !== context && !real.startsWith(`${context}/`)) {
        return yield* new ContainerSourceUnreadable({
          source,
          path: relative,
          reason: "it leads out of the build context through a symlink",
        })
      }
      return real
    })

  /** The bytes of the file at `real`, refused past `limit`. */
  const readSmallFile = (source: string, shown: string, real: string, limit: number) =>
    Effect.gen(function* () {
      const info = yield* fs.stat(real).pipe(Effect.mapError(unreadable(source, shown)))
      if (info.type !== "File") {
        return yield* new ContainerSourceUnreadable({ source, path: shown, reason: "not a file" })
      }
      if (Number(info.size) > limit) {
        return yield* new ContainerJsonMalformed({
          source,
          document: shown,
          reason: `it has ${info.size} bytes, more than ${limit}`,
        })
      }
      return yield* fs.readFile(real).pipe(Effect.mapError(unreadable(source, shown)))
    })

  /** The blobs of the OCI layout `directory` (relative to `contextDir`). */
  const layoutStore = (source: string, contextDir: string, directory: string): BlobStore => ({
    document: (descriptor) =>
      Effect.gen(function* () {
        yield* checkedDigest(source, descriptor)
        const relative = path.join(directory, blobName(descriptor.digest))
        const real = yield* confined(source, contextDir, relative).pipe(
          Effect.catchTag("ContainerImageNotFound", () =>
            Effect.fail(
              new ContainerImageNotFound({ source, missing: `blob ${descriptor.digest}` }),
            )),
        )
        const bytes = yield* readSmallFile(source, relative, real, MAX_DOCUMENT_BYTES)
        return yield* verifiedDocument(source, descriptor, bytes)
      }),
    blob: (descriptor) =>
      Stream.unwrap(Effect.gen(function* () {
        const relative = path.join(directory, blobName(descriptor.digest))
        const real = yield* confined(source, contextDir, relative).pipe(
          Effect.catchTag("ContainerImageNotFound", () =>
            Effect.fail(
              new ContainerImageNotFound({ source, missing: `blob ${descriptor.digest}` }),
            )),
        )
        return fs.stream(real).pipe(Stream.mapError(unreadable(source, relative)))
      })),
  })

  /** An archive in the build context, its members indexed by one pass over its headers. */
  const openArchive = (source: string, contextDir: string, archive: string) =>
    Effect.gen(function* () {
      const real = yield* confined(source, contextDir, archive)
      const info = yield* fs.stat(real).pipe(Effect.mapError(unreadable(source, archive)))
      const members = yield* Effect.scoped(Effect.gen(function* () {
        const file = yield* fs.open(real, { flag: "r" })
        const readAt = (offset: number, length: number) =>
          Effect.gen(function* () {
            yield* file.seek(offset, "start")
            const bytes = new Uint8Array(length)
            let filled = 0
            while (filled < length) {
              const count = Number(yield* file.read(bytes.subarray(filled)))
              if (count === 0) break
              filled += count
            }
            return bytes.subarray(0, filled)
          })
        return yield* indexTarMembers(readAt, Number(info.size))
      })).pipe(
        Effect.mapError((error) =>
          typeof error === "string"
            ? new ContainerJsonMalformed({ source, document: "archive", reason: error })
            : unreadable(source, archive)(error)
        ),
      )
      /** The member `name`, following symlinks and hardlinks inside the archive. */
      const member = (name: string, hops = 0): Effect.Effect<TarMember, ContainerImageError> => {
        const found = members.get(memberName(path.normalize(name)))
        if (found === undefined || hops > 8) {
          return Effect.fail(new ContainerImageNotFound({ source, missing: `member ${name}` }))
        }
        if (found.type === "1") return member(found.linkName, hops + 1)
        if (found.type === "2") {
          return member(path.join(path.dirname(memberName(name)), found.linkName), hops + 1)
        }
        if (!isRegularMember(found)) {
          return Effect.fail(
            new ContainerSourceUnreadable({
              source,
              path: `${archive}:${name}`,
              reason: "not a file",
            }),
          )
        }
        return Effect.succeed(found)
      }
      const memberBytes = (found: TarMember) =>
        fs.stream(real, { offset: found.offset, bytesToRead: found.size }).pipe(
          Stream.mapError(unreadable(source, archive)),
        )
      const readMember = (name: string) =>
        Effect.gen(function* () {
          const found = yield* member(name)
          if (found.size > MAX_DOCUMENT_BYTES) {
            return yield* new ContainerJsonMalformed({
              source,
              document: name,
              reason: `it has ${found.size} bytes, more than ${MAX_DOCUMENT_BYTES}`,
            })
          }
          return yield* collected(memberBytes(found), MAX_DOCUMENT_BYTES, () =>
            new ContainerJsonMalformed({ source, document: name, reason: "it grew" }))
        })
      const openMember = (name: string) => Stream.unwrap(Effect.map(member(name), memberBytes))
      return { member, readMember, openMember }
    })

  const archiveStore = (
    source: string,
    archive: Effect.Effect<
      {
        readonly readMember: (name: string) => Effect.Effect<Uint8Array, ContainerImageError>
        readonly openMember: (name: string) => Stream.Stream<Uint8Array, ContainerImageError>
      },
      ContainerImageError
    >,
  ): BlobStore => ({
    document: (descriptor) =>
      Effect.gen(function* () {
        yield* checkedDigest(source, descriptor)
        const opened = yield* archive
        const bytes = yield* opened.readMember(blobName(descriptor.digest)).pipe(
          Effect.catchTag("ContainerImageNotFound", () =>
            Effect.fail(
              new ContainerImageNotFound({ source, missing: `blob ${descriptor.digest}` }),
            )),
        )
        return yield* verifiedDocument(source, descriptor, bytes)
      }),
    blob: (descriptor) =>
      Stream.unwrap(
        Effect.map(archive, (opened) => opened.openMember(blobName(descriptor.digest))),
      ),
  })

  return { unreadable, confined, readSmallFile, layoutStore, openArchive, archiveStore }
}

/** An archive opened by `contextFiles(...).openArchive`. */
export type OpenedArchive = Effect.Effect.Success<
  ReturnType<ReturnType<typeof contextFiles>["openArchive"]>
>
