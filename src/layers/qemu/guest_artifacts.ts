/**
 * Where the helper VM's boot files are: `$TRANSIENT_GUEST_DIR`, else `guest/dist` beside the
 * sources (`deno run`), else the copy embedded in a `deno compile` executable, which is
 * extracted to the user's cache first because QEMU cannot read the executable's embedded files.
 * `deno task guest` makes them; guest/manifest.json lists them with their sizes and sums.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { VmBootFailed } from "../../domain/errors/vm.ts"
import { guestInputsDigest, GuestManifestJson } from "../../domain/guest/manifest.ts"

/** The boot files of the helper VM, as absolute paths. */
export interface GuestArtifacts {
  /** An uncompressed x86_64 kernel (ELF, booted through its PVH entry point). */
  readonly kernel: string
  readonly initrd: string
  /** The read-only disk with Deno and the agent; absent when they are in the initramfs. */
  readonly runtime?: string
  readonly manifest: string
  /** The kernel release, e.g. `6.1.0-56-amd64`. */
  readonly kernelVersion: string
  /** The digest of what they were made from, for step-cache keys. */
  readonly inputs: string
}

const BUILD_HINT = "build them with `deno task guest`"

const missing = (reason: string) =>
  new VmBootFailed({ operation: "find its kernel and initramfs", reason })

/**
 * The artifacts in `dir`, checked against its manifest: each listed file must exist with the
 * listed size (a cheap guard against a half-written or stale directory).
 */
export const guestArtifactsIn = Effect.fn("GuestArtifacts.in")(function* (dir: string) {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const manifestPath = path.join(dir, "manifest.json")
  const text = yield* fs.readFileString(manifestPath).pipe(
    Effect.mapError(() => missing(`${manifestPath} does not exist; ${BUILD_HINT}`)),
  )
  const manifest = yield* Schema.decodeUnknown(GuestManifestJson)(text).pipe(
    Effect.mapError(() => missing(`${manifestPath} is not a guest manifest; ${BUILD_HINT}`)),
  )
  const checked = (name: string, size: number) =>
    fs.stat(path.join(dir, name)).pipe(
      Effect.flatMap((info) =>
        Number(info.size) === size ? Effect.void : Effect.fail(
          missing(`${path.join(dir, name)} does not match its manifest; ${BUILD_HINT}`),
        )
      ),
      Effect.catchTag("SystemError", () =>
        Effect.fail(missing(`${path.join(dir, name)} does not exist; ${BUILD_HINT}`))),
      Effect.catchTag("BadArgument", () =>
        Effect.fail(missing(`${path.join(dir, name)} cannot be read; ${BUILD_HINT}`))),
      Effect.as(path.join(dir, name)),
    )
  const { artifacts } = manifest
  const kernel = yield* checked("vmlinux", artifacts.vmlinux.size)
  const initrd = yield* checked("initramfs.img", artifacts["initramfs.img"].size)
  const runtime = artifacts["runtime.img"] === undefined
    ? undefined
    : yield* checked("runtime.img", artifacts["runtime.img"].size)
  const found: GuestArtifacts = {
    kernel,
    initrd,
    manifest: manifestPath,
    kernelVersion: manifest.kernel,
    inputs: guestInputsDigest(manifest),
    ...(runtime === undefined ? {} : { runtime }),
  }
  return found
})

/**
 * Copy the artifacts of `embedded` (inside a compiled executable) to `cacheRoot/<inputs hash>`,
 * once, and return the copies. Files are written under a temporary name and renamed, so a
 * concurrent or interrupted extraction never leaves a partial file in place.
 */
export const extractGuestArtifacts = Effect.fn("GuestArtifacts.extract")(function* (
  embedded: string,
  cacheRoot: string,
) {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const source = yield* guestArtifactsIn(embedded)
  const manifest = yield* fs.readFileString(source.manifest).pipe(
    Effect.flatMap(Schema.decodeUnknown(GuestManifestJson)),
    Effect.orDie,
  )
  const target = path.join(cacheRoot, manifest.inputs.slice(0, 16))
  const cached = yield* guestArtifactsIn(target).pipe(Effect.option)
  if (Option.isSome(cached)) return cached.value
  const failure = (error: unknown) =>
    new VmBootFailed({
      operation: "find its kernel and initramfs",
      reason: `cannot extract them to ${target}: ${String(error)}`,
    })
  yield* fs.makeDirectory(target, { recursive: true }).pipe(Effect.mapError(failure))
  const files = [source.kernel, source.initrd, ...(source.runtime ? [source.runtime] : [])]
  // The manifest last: its presence marks a complete copy.
  for (const file of [...files, source.manifest]) {
    const destination = path.join(target, path.basename(file))
    const partial = `${destination}.${Date.now()}.partial`
    yield* fs.copyFile(file, partial).pipe(
      Effect.zipRight(fs.rename(partial, destination)),
      Effect.mapError(failure),
    )
  }
  return yield* guestArtifactsIn(target)
})

/** Whether this module runs from a `deno compile` executable's embedded file system. */
const runsEmbedded = (moduleUrl: string) => moduleUrl.includes("/deno-compile-")

/**
 * Find the helper VM's artifacts: `$TRANSIENT_GUEST_DIR` if set (and then only there), else
 * guest/dist beside the sources, extracted to `$XDG_CACHE_HOME/transient/guest` (or
 * `~/.cache/...`) when that is inside a compiled executable.
 */
export const findGuestArtifacts = Effect.fn("GuestArtifacts.find")(function* (
  moduleUrl: string = import.meta.url,
) {
  const path = yield* Path.Path
  const fromEnv = yield* Config.option(Config.string("TRANSIENT_GUEST_DIR")).pipe(
    Effect.orElseSucceed(() => Option.none<string>()),
  )
  if (Option.isSome(fromEnv) && fromEnv.value !== "") {
    return yield* guestArtifactsIn(path.resolve(fromEnv.value))
  }
  const beside = path.join(path.dirname(new URL(moduleUrl).pathname), "../../../guest/dist")
  if (!runsEmbedded(moduleUrl)) return yield* guestArtifactsIn(beside)
  const cacheHome = yield* Config.option(Config.string("XDG_CACHE_HOME")).pipe(
    Effect.orElseSucceed(() => Option.none<string>()),
  )
  const home = yield* Config.string("HOME").pipe(Effect.orElseSucceed(() => "/tmp"))
  const cacheRoot = path.join(Option.getOrElse(cacheHome, () => path.join(home, ".cache")))
  return yield* extractGuestArtifacts(beside, path.join(cacheRoot, "transient", "guest"))
})
