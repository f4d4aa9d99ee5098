/**
 * The store's `.working/` directory: private files of the processes at work, named after the
 * image and the owning process, and one lock file per image name.
 *
 * A working file is `<encoded name>.<pid>.<random>.<kind>`, owned through its lock file
 * (stale_files.ts). Nothing ever trusts one: a process only uses the files it created itself, and
 * removes them when its scope closes; files whose owner is gone (killed, crashed) are removed by
 * the next store that opens.
 */
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import { isNotFound, OWN_PID, ownedPath, sweepStale } from "../stale_files.ts"
export const WORKING = ".working"

/** A fresh working-file name for `encodedName`, owned by this process. */
export const workingFileName = (encodedName: string, kind: string): string =>
  `${encodedName}.${OWN_PID}.${crypto.randomUUID()}.${kind}`

/** A fresh hidden name beside `fileName` (a `--local` build's target), owned by this process. */
export const besideFileName = (fileName: string): string =>
  `.${fileName}.${OWN_PID}.${crypto.randomUUID()}.tmp`

/** Whether `name` is one that `besideFileName(fileName)` makes. */
export const isBesideFileName = (fileName: string) => (name: string): boolean =>
  name.startsWith(`.${fileName}.`) && name.endsWith(".tmp") && isWorkingFileName(name)

export const lockFileName = (encodedName: string): string => `${encodedName}.lock`

/** Whether `fileName` is a working file's (encoded names contain no dots that precede digits only). */
export const isWorkingFileName = (fileName: string): boolean =>
  /\.\d+\.[0-9a-f-]{36}\.[a-z0-9]+$/.test(fileName)

/** Remove a file if it is there. */
export const removeIfPresent = (
  file: string,
): Effect.Effect<void, PlatformError, FileSystem.FileSystem> =>
  Effect.flatMap(
    FileSystem.FileSystem,
    (fs) => fs.remove(file).pipe(Effect.catchIf(isNotFound, () => Effect.void)),
  )

/** Remove the working files whose owner is gone; returns their names. */
export const sweepStaleWork = (workingDir: string) => sweepStale(workingDir, isWorkingFileName)

/** A path in `workingDir` owned by this process, removed when the scope closes. */
export const workingFile = (workingDir: string, encodedName: string, kind: string) =>
  Effect.flatMap(
    Path.Path,
    (path) => ownedPath(path.join(workingDir, workingFileName(encodedName, kind))),
  )
