/**
 * The step cache's layer files as the cache checks and pins them: a shared lock (flock) held by
 * each build on the layers it stands on, an exclusive one tried by whatever would remove them,
 * their digest and their header, whose backing name a layer built here gets in place.
 * @effect/platform has no file locks, so this is Deno.FsFile.
 */
import { createHash } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { PROBE_BYTES, withBackingName } from "../../domain/image_format.ts"
import type { FileStamp } from "../../domain/store_record.ts"

/** A layer file held open under a shared lock: it is not removed while the scope is open. */
export interface PinnedFile {
  readonly file: Deno.FsFile
  readonly stamp: FileStamp
}

const stampOf = (info: Deno.FileInfo): FileStamp => ({
  size: info.size,
  ino: info.ino ?? 0,
  mtimeMs: info.mtime?.getTime() ?? 0,
})

const openScoped = (path: string) =>
  Effect.acquireRelease(
    Effect.tryPromise(() => Deno.open(path, { read: true })),
    (file) => Effect.sync(() => file.close()),
  )

/**
 * Open `path` and hold a shared lock on it until the scope closes; none when it is missing,
 * not a regular file, or was replaced while the lock was awaited.
 */
export const pinShared = (
  path: string,
): Effect.Effect<Option.Option<PinnedFile>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const file = yield* openScoped(path)
    yield* Effect.tryPromise(() => file.lock(false))
    const [held, named] = yield* Effect.tryPromise(() =>
      Promise.all([file.stat(), Deno.stat(path)])
    )
    if (!held.isFile || held.ino !== named.ino) return Option.none<PinnedFile>()
    return Option.some({ file, stamp: stampOf(held) })
  }).pipe(Effect.orElseSucceed(() => Option.none<PinnedFile>()))

/**
 * Whether an exclusive lock on `path` was taken at once (held until the scope closes): false
 * when a build holds the file, or it is gone.
 */
export const tryLockExclusive = (path: string): Effect.Effect<boolean, never, Scope.Scope> =>
  openScoped(path).pipe(
    Effect.flatMap((file) => Effect.tryPromise(() => file.tryLock(true))),
    Effect.orElseSucceed(() => false),
  )

/** `sha256:HEX` of the whole of `file`, read from its start. */
export const digestOfFile = (file: Deno.FsFile): Effect.Effect<string, unknown> =>
  Effect.tryPromise(async () => {
    await file.seek(0, Deno.SeekMode.Start)
    const hash = createHash("sha256")
    const buffer = new Uint8Array(1024 * 1024)
    for (;;) {
      const read = await file.read(buffer)
      if (read === null) break
      hash.update(buffer.subarray(0, read))
    }
    return `sha256:${hash.digest("hex")}`
  })

/** `sha256:HEX` of the file at `path`, with its stamp. */
export const digestOfPath = (
  path: string,
): Effect.Effect<{ readonly digest: string; readonly stamp: FileStamp }, unknown> =>
  Effect.scoped(Effect.gen(function* () {
    const file = yield* openScoped(path)
    const digest = yield* digestOfFile(file)
    const stamp = stampOf(yield* Effect.tryPromise(() => file.stat()))
    return { digest, stamp }
  }))

/** The first bytes of `file` (up to PROBE_BYTES), for the header probe. */
export const headOfFile = (file: Deno.FsFile): Effect.Effect<Uint8Array, unknown> =>
  Effect.tryPromise(async () => {
    await file.seek(0, Deno.SeekMode.Start)
    const head = new Uint8Array(PROBE_BYTES)
    let length = 0
    while (length < head.length) {
      const read = await file.read(head.subarray(length))
      if (read === null) break
      length += read
    }
    return head.subarray(0, length)
  })

/**
 * Name `backing` as the backing file of the qcow2 at `path` by rewriting its header in place,
 * with the bytes `qemu-img rebase -u -F qcow2` would write, without a process per layer; false,
 * the file untouched, when its header is not one that rewrite covers (withBackingName). Not
 * synced: a rewrite lost in a crash leaves the old name, which the probe of every hit refuses.
 */
export const rewriteBackingName = (
  path: string,
  backing: string,
): Effect.Effect<boolean, unknown> =>
  Effect.scoped(Effect.gen(function* () {
    const file = yield* Effect.acquireRelease(
      Effect.tryPromise(() => Deno.open(path, { read: true, write: true })),
      (file) => Effect.sync(() => file.close()),
    )
    const rewritten = withBackingName(yield* headOfFile(file), backing)
    if (rewritten === undefined) return false
    yield* Effect.tryPromise(async () => {
      await file.seek(0, Deno.SeekMode.Start)
      for (let written = 0; written < rewritten.length;) {
        written += await file.write(rewritten.subarray(written))
      }
    })
    return true
  }))
