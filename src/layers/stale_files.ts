/**
 * Files and directories named after the process that owns them, and the sweep that removes those
 * whose owner is gone: a transient killed with SIGKILL cannot clean up, so the next one does.
 * Nothing else is ever touched: only names that carry a pid, of processes that no longer run.
 */
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"

// @effect/platform has no process id; the names of this process's files carry this one.
export const OWN_PID = Deno.pid

export const isNotFound = (error: PlatformError): boolean =>
  error._tag === "SystemError" && error.reason === "NotFound"

const isRunning = (pid: number): Effect.Effect<boolean, never, FileSystem.FileSystem> =>
  pid === OWN_PID ? Effect.succeed(true) : Effect.flatMap(
    FileSystem.FileSystem,
    (fs) => fs.exists(`/proc/${pid}`).pipe(Effect.orElseSucceed(() => false)),
  )

/**
 * Remove the entries of `directory` whose owner (the pid `ownerOf` reads in the name) is gone,
 * directories with their content; returns their names.
 */
export const sweepStale = (
  directory: string,
  ownerOf: (name: string) => number | undefined,
): Effect.Effect<ReadonlyArray<string>, PlatformError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const stale = yield* Effect.filter(yield* fs.readDirectory(directory), (name) => {
      const owner = ownerOf(name)
      return owner === undefined ? Effect.succeed(false) : Effect.map(isRunning(owner), (up) => !up)
    })
    yield* Effect.forEach(
      stale,
      (name) =>
        fs.remove(path.join(directory, name), { recursive: true }).pipe(
          Effect.catchIf(isNotFound, () => Effect.void),
        ),
    )
    return stale
  })
