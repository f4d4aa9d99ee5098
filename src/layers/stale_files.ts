/**
 * Files and directories that belong to one process while it works, and the sweep that removes
 * those whose owner is gone: a transient killed with SIGKILL cannot clean up, so the next one does.
 *
 * An owned path `NAME` has a lock file `NAME.lock` beside it, which its process creates and locks
 * (flock, exclusive) before `NAME` exists and holds until `NAME` is removed. The kernel drops the
 * lock when the process ends, however it ends, so a lock that another process can take means the
 * owner is gone. A PID would not say as much: a build in another PID namespace (a container
 * sharing the cache directory) sees no process of that number. The PID may stay in names, for
 * the humans who read them.
 */
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { platformError } from "./store/locks.ts"

/** This process's id, for names that humans read; it never decides whether an owner is alive. */
export const OWN_PID = Deno.pid

export const isNotFound = (error: PlatformError): boolean =>
  error._tag === "SystemError" && error.reason === "NotFound"

const lockOf = (path: string): string => `${path}.lock`
const LOCK_SUFFIX = ".lock"

/** A sweeper may take a lock file between its creation and its locking: then make another. */
const LOCK_ATTEMPTS = 5

/** Create and lock `lock`; retried when a sweeper removed it before the lock was taken. */
const createLocked = (lock: string): Promise<Deno.FsFile> => {
  const attempt = async (left: number): Promise<Deno.FsFile> => {
    const file = await Deno.open(lock, { createNew: true, write: true, mode: 0o600 })
    try {
      await file.lock(true)
      const [held, named] = await Promise.all([
        file.stat(),
        Deno.lstat(lock).catch(() => undefined),
      ])
      if (named !== undefined && named.ino === held.ino && named.dev === held.dev) return file
    } catch (error) {
      file.close()
      throw error
    }
    file.close()
    if (left <= 1) throw new Deno.errors.Busy(`${lock} was removed each time it was locked`)
    return attempt(left - 1)
  }
  return attempt(LOCK_ATTEMPTS)
}

const removeAll = (fs: FileSystem.FileSystem, path: string) =>
  fs.remove(path, { recursive: true }).pipe(Effect.catchIf(isNotFound, () => Effect.void))

/**
 * Own `path` (which must not exist yet, under a name no other process uses) until the scope
 * closes: `path` may then be created, and is removed with its lock when the scope closes.
 */
export const ownedPath = (
  path: string,
): Effect.Effect<string, PlatformError, FileSystem.FileSystem | Scope.Scope> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) =>
    Effect.as(
      Effect.acquireRelease(
        Effect.tryPromise({
          try: () => createLocked(lockOf(path)),
          catch: platformError("lock", path),
        }),
        // Removed while the lock is held, so that no sweeper sees the path without its owner.
        (lock) =>
          removeAll(fs, path).pipe(
            Effect.zipRight(removeAll(fs, lockOf(path))),
            Effect.ignore,
            Effect.ensuring(Effect.sync(() => lock.close())),
          ),
      ),
      path,
    ))

/**
 * The lock of `path`'s owner when this process could take it (the owner is gone), "missing"
 * when there is no lock file, undefined when the owner holds it (or it cannot be opened).
 */
const takeLock = async (path: string): Promise<Deno.FsFile | "missing" | undefined> => {
  const lock = lockOf(path)
  // Only a regular file: opening a FIFO planted in /tmp would wait forever.
  const info = await Deno.lstat(lock).catch((error) => error)
  if (info instanceof Deno.errors.NotFound) return "missing"
  if (info instanceof Error || !info.isFile) return undefined
  const file = await Deno.open(lock, { read: true }).catch(() => undefined)
  if (file === undefined) return undefined
  if (await file.tryLock(true).catch(() => false)) return file
  file.close()
  return undefined
}

/**
 * Remove the entries of `directory` that `isOwnedName` says are owned paths (and their locks)
 * whose owner is gone, directories with their content; returns their names. A path without a
 * lock file is gone too: its owner locked one before making it, and removes it after the path.
 */
export const sweepStale = (
  directory: string,
  isOwnedName: (name: string) => boolean,
): Effect.Effect<ReadonlyArray<string>, PlatformError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const names = new Set(
      (yield* fs.readDirectory(directory))
        .map((name) => name.endsWith(LOCK_SUFFIX) ? name.slice(0, -LOCK_SUFFIX.length) : name)
        .filter(isOwnedName),
    )
    const stale = yield* Effect.filter([...names], (name) => {
      const owned = path.join(directory, name)
      return Effect.acquireUseRelease(
        Effect.promise(() => takeLock(owned)),
        (lock) =>
          lock === undefined ? Effect.succeed(false) : removeAll(fs, owned).pipe(
            Effect.zipRight(removeAll(fs, lockOf(owned))),
            Effect.as(true),
          ),
        (lock) => Effect.sync(() => typeof lock === "object" && lock.close()),
      )
    })
    return stale
  })
