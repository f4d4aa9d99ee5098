/**
 * The MemoryWorld's disks as files, for the code that reads and writes image bytes through
 * FileSystem (push, the registry build cache): a disk's bytes are those of
 * src/layers/memory/disk_bytes.ts, and a file written with such bytes becomes that disk again at
 * its path.
 */
import { SystemError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { diskBytes, diskFromBytes } from "../../src/layers/memory/disk_bytes.ts"
import type { MemoryWorld } from "../../src/layers/memory/world.ts"

const missing = (method: string, path: string) =>
  new SystemError({
    reason: "NotFound",
    module: "FileSystem",
    method,
    pathOrDescriptor: path,
    description: `no such file: ${path}`,
  })

const info = (size: number): FileSystem.File.Info => ({
  type: "File",
  mtime: Option.some(new Date(0)),
  atime: Option.none(),
  birthtime: Option.none(),
  dev: 0,
  ino: Option.none(),
  mode: 0o644,
  nlink: Option.none(),
  uid: Option.none(),
  gid: Option.none(),
  rdev: Option.none(),
  size: FileSystem.Size(size),
  blksize: Option.none(),
  blocks: Option.none(),
})

/**
 * A FileSystem whose files are `world`'s disks (read) and files written to become disks; files
 * are renamed and removed as a whole.
 */
export const WorldFileSystem = (world: MemoryWorld): Layer.Layer<FileSystem.FileSystem> => {
  const written = new Map<string, Uint8Array>()
  const contents = (path: string) => {
    const disk = world.disks.get(path)
    return disk === undefined ? written.get(path) : diskBytes(disk)
  }
  const store = (path: string, bytes: Uint8Array) => {
    written.set(path, bytes)
    const disk = diskFromBytes(bytes)
    if (disk !== undefined) world.disks.set(path, disk)
  }
  let descriptors = 100
  const open = (path: string, options?: FileSystem.OpenFileOptions) =>
    Effect.gen(function* () {
      const writing = options?.flag !== undefined && options.flag !== "r"
      if (!writing && contents(path) === undefined) return yield* missing("open", path)
      if (writing) store(path, new Uint8Array())
      let position = 0
      const current = () => contents(path) ?? new Uint8Array()
      const write = (buffer: Uint8Array) =>
        Effect.sync(() => {
          const before = current()
          const after = new Uint8Array(Math.max(before.length, position + buffer.length))
          after.set(before)
          after.set(buffer, position)
          position += buffer.length
          store(path, after)
          return FileSystem.Size(buffer.length)
        })
      const read = (buffer: Uint8Array) =>
        Effect.sync(() => {
          const part = current().subarray(position, position + buffer.length)
          buffer.set(part)
          position += part.length
          return FileSystem.Size(part.length)
        })
      const file: FileSystem.File = {
        [FileSystem.FileTypeId]: FileSystem.FileTypeId,
        fd: FileSystem.FileDescriptor(descriptors++),
        stat: Effect.sync(() => info(current().length)),
        seek: (offset, from) =>
          Effect.sync(() => {
            position = (from === "start" ? 0 : position) + Number(offset)
          }),
        sync: Effect.void,
        read,
        readAlloc: (size) =>
          Effect.sync(() => {
            const part = current().slice(position, position + Number(size))
            position += part.length
            return part.length === 0 ? Option.none() : Option.some(part)
          }),
        truncate: (length) =>
          Effect.sync(() => {
            const resized = new Uint8Array(Number(length ?? 0))
            resized.set(current().subarray(0, resized.length))
            store(path, resized)
          }),
        write,
        writeAll: (buffer) => Effect.asVoid(write(buffer)),
      }
      return file
    })
  return FileSystem.layerNoop({
    open,
    stat: (path) => {
      const bytes = contents(path)
      return bytes === undefined
        ? Effect.fail(missing("stat", path))
        : Effect.succeed(info(bytes.length))
    },
    exists: (path) => Effect.succeed(contents(path) !== undefined),
    readFile: (path) => {
      const bytes = contents(path)
      return bytes === undefined ? Effect.fail(missing("readFile", path)) : Effect.succeed(bytes)
    },
    stream: (path) =>
      Stream.suspend(() => {
        const bytes = contents(path)
        return bytes === undefined ? Stream.fail(missing("stream", path)) : Stream.make(bytes)
      }),
    rename: (from, to) =>
      Effect.gen(function* () {
        const bytes = contents(from)
        if (bytes === undefined) return yield* missing("rename", from)
        const disk = world.disks.get(from)
        written.delete(from)
        world.disks.delete(from)
        written.set(to, bytes)
        if (disk !== undefined) world.disks.set(to, disk)
      }),
    remove: (path) =>
      contents(path) === undefined ? Effect.fail(missing("remove", path)) : Effect.sync(() => {
        written.delete(path)
        world.disks.delete(path)
      }),
  })
}
