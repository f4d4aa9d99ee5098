/**
 * One fetch or publication per image name at a time, across processes: an exclusive lock on the
 * name's lock file in `.working/`, held until the scope closes.
 */
import { type PlatformError, SystemError } from "@effect/platform/Error"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { StoreIoError } from "../../domain/errors/store.ts"
import type { StoreLayout } from "./store_layout.ts"

export const platformError = (method: string, path: string) => (cause: unknown): PlatformError =>
  new SystemError({
    reason: cause instanceof Deno.errors.NotFound
      ? "NotFound"
      : cause instanceof Deno.errors.PermissionDenied
      ? "PermissionDenied"
      : "Unknown",
    module: "FileSystem",
    method,
    pathOrDescriptor: path,
    description: cause instanceof Error ? cause.message : String(cause),
    cause,
  })

/**
 * Hold an exclusive lock on `path` (created if missing) until the scope closes. @effect/platform
 * has no file locks, so this is `Deno.FsFile.lock` (flock), the store's one use of Deno itself.
 */
export const lockExclusive = (path: string): Effect.Effect<void, PlatformError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => Deno.open(path, { create: true, write: true, mode: 0o644 }),
      catch: platformError("open", path),
    }),
    (file) => Effect.sync(() => file.close()),
  ).pipe(
    Effect.flatMap((file) =>
      Effect.tryPromise({ try: () => file.lock(true), catch: platformError("lock", path) })
    ),
  )

/** Hold the lock of the image `name` until the scope closes. */
export const lockImageName = (
  layout: StoreLayout,
  name: string,
): Effect.Effect<void, StoreIoError, Scope.Scope> => {
  const path = layout.lockOf(name)
  return lockExclusive(path).pipe(
    Effect.mapError((cause) => new StoreIoError({ operation: "lock", image: name, path, cause })),
  )
}
