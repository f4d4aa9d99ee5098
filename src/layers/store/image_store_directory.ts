/**
 * ImageStoreDirectory: the ImageStore on a directory (the image backend), compatible with the
 * original transient's layout: one read-only qcow2 per image, named by `encodeImageName`, partial
 * work in `.working/` on the same file system, publication by atomic rename or link.
 *
 * Fetches are streamed (memory stays bounded whatever the image size), decompressed on the fly,
 * checksummed when a checksum is known, converted to qcow2 and only then published; a lock file
 * per name makes concurrent fetches of one image, from any number of processes, download once.
 */
import { createHash, getHashes, type Hash } from "node:crypto"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ImageExists, StoreError } from "../../domain/errors.ts"
import {
  decodeImageName,
  encodeImageName,
  type ImageSource,
  type ImageSpec,
  parseImageSpec,
  parseVagrantBox,
} from "../../domain/image_spec.ts"
import { DiskImages } from "../../services/disk_images.ts"
import {
  ImageStore,
  type ImageStoreShape,
  type PublishTarget,
  type StoredImage,
} from "../../services/image_store.ts"
import { Reporter } from "../../services/reporter.ts"
import { decompressed, SourceError } from "./decompress.ts"
import { type OpenedSource, openFile, openUrl, openVagrantBox } from "./sources.ts"
import { writeSparse } from "./sparse_file.ts"
import { tarEntry } from "./tar_entry.ts"
import {
  lockFileName,
  removeIfPresent,
  sweepStale,
  WORKING,
  workingFileName,
} from "./working_dir.ts"

export const DEFAULT_VAGRANT_URL = "https://vagrantcloud.com"

export interface ImageStoreDirectoryOptions {
  /** The Vagrant Cloud API base; defaults to `$TRANSIENT_VAGRANT_URL`, else the public one. */
  readonly vagrantUrl?: string
}

const reasonOf = (error: unknown): string => error instanceof Error ? error.message : String(error)

/** Run a file-system or network step, turning its failure into a StoreError about `image`. */
const attempt = <A>(
  image: string,
  what: string,
  run: (signal: AbortSignal) => Promise<A>,
): Effect.Effect<A, StoreError> =>
  Effect.tryPromise({
    try: run,
    catch: (error) =>
      new StoreError({
        image,
        reason: error instanceof SourceError ? error.message : `${what}: ${reasonOf(error)}`,
      }),
  })

const isPresent = (file: string): Promise<boolean> =>
  Deno.lstat(file).then(() => true, (error) => {
    if (error instanceof Deno.errors.NotFound) return false
    throw error
  })

const makeImageStoreDirectory = Effect.fn("ImageStoreDirectory.make")(function* (
  backend: string,
  options: ImageStoreDirectoryOptions,
) {
  const disks = yield* DiskImages
  const reporter = yield* Reporter
  const root = path.resolve(backend)
  const working = path.join(root, WORKING)
  const vagrantUrl = options.vagrantUrl ?? Deno.env.get("TRANSIENT_VAGRANT_URL") ??
    DEFAULT_VAGRANT_URL

  yield* attempt(root, `Cannot open the image store at ${root}`, async () => {
    await Deno.mkdir(working, { recursive: true })
    await sweepStale(working)
  })

  const pathOf = (name: string) => path.join(root, encodeImageName(name))

  const stored = (name: string, file: string) =>
    Effect.map(disks.info(file), (info): StoredImage => ({
      name,
      path: file,
      format: info.format,
      virtualSize: info.virtualSize,
      actualSize: info.actualSize,
    }))

  const present = (name: string, file: string) =>
    attempt(name, `Cannot look up image '${name}' in ${root}`, () => isPresent(file))

  /** Hold the name's lock file until the scope closes: one fetch or publication per name. */
  const lockName = (name: string) =>
    Effect.acquireRelease(
      attempt(
        name,
        `Cannot lock image '${name}'`,
        () =>
          Deno.open(path.join(working, lockFileName(encodeImageName(name))), {
            create: true,
            write: true,
            mode: 0o644,
          }),
      ),
      (file) => Effect.sync(() => file.close()),
    ).pipe(
      Effect.tap((file) =>
        attempt(name, `Cannot lock image '${name}'`, (_signal) => file.lock(true))
      ),
    )

  /** A path in `.working/` for this process, removed when the scope closes. */
  const workingFile = (name: string, kind: string) =>
    Effect.acquireRelease(
      Effect.sync(() => path.join(working, workingFileName(encodeImageName(name), kind))),
      (file) => Effect.promise(() => removeIfPresent(file).catch(() => {})),
    )

  /** An abort signal for the network work of this scope: closing the scope cancels it. */
  const abortOnClose = Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => new AbortController()),
      (controller) => Effect.sync(() => controller.abort()),
    ),
    (controller) => controller.signal,
  )

  /**
   * Make `from` the published file `to`, read-only when `readOnly`. Without `force` the link
   * fails if `to` exists, so no one's image is ever replaced by accident, even in a race.
   */
  const publish = (
    name: string,
    from: string,
    to: string,
    { force, readOnly }: { readonly force: boolean; readonly readOnly: boolean },
  ): Effect.Effect<void, StoreError | ImageExists> =>
    Effect.flatMap(
      attempt(name, `Cannot publish image '${name}' at ${to}`, async () => {
        if (readOnly) await Deno.chmod(from, 0o444)
        // The data must be on disk before the name points at it.
        const file = await Deno.open(from, { read: true })
        try {
          await file.sync()
        } finally {
          file.close()
        }
        if (force) {
          await Deno.rename(from, to)
          return true
        }
        try {
          await Deno.link(from, to)
        } catch (error) {
          if (error instanceof Deno.errors.AlreadyExists) return false
          throw error
        }
        await Deno.remove(from)
        return true
      }),
      (published) => published ? Effect.void : Effect.fail(new ImageExists({ name, path: to })),
    )

  /** Stream the source into `download`: decompressed, box.img extracted, checksum verified. */
  const download = (spec: ImageSpec, source: FetchSource, destination: string) =>
    Effect.gen(function* () {
      const signal = yield* abortOnClose
      const opened: OpenedSource = yield* attempt(
        spec.name,
        `Cannot fetch ${source.describe}`,
        () =>
          source._tag === "File"
            ? openFile(source.path)
            : source._tag === "Http"
            ? openUrl(source.url, signal)
            : openVagrantBox(vagrantUrl, source.box, signal),
      )
      const expected = spec.sha256 !== undefined
        ? { type: "sha256", value: spec.sha256 }
        : opened.checksum
      let hash: Hash | undefined
      if (expected !== undefined) {
        if (getHashes().includes(expected.type)) hash = createHash(expected.type)
        else {
          yield* reporter.warn(
            `Cannot verify ${source.describe}: unknown checksum type '${expected.type}'`,
          )
        }
      }
      const progress = yield* reporter.progress(source.label, opened.size)
      let received = 0
      const observed = opened.stream.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            received += chunk.length
            hash?.update(chunk)
            Effect.runSync(progress.advance(chunk.length))
            controller.enqueue(chunk)
          },
        }),
      )
      yield* attempt(spec.name, `Cannot fetch ${source.describe}`, async () => {
        let image = (await decompressed(observed)).stream
        if (opened.boxArchive) {
          image = tarEntry(
            image,
            (entry) => entry === "box.img" || entry.endsWith("/box.img"),
            `The Vagrant box archive of ${source.describe}`,
          )
        }
        await writeSparse(image, destination)
      }).pipe(Effect.ensuring(progress.done))
      if (opened.size !== undefined && received !== opened.size) {
        return yield* new StoreError({
          image: spec.name,
          reason:
            `Cannot fetch ${source.describe}: the transfer ended after ${received} of ${opened.size} bytes`,
        })
      }
      if (hash !== undefined && expected !== undefined) {
        const actual = hash.digest("hex")
        if (actual !== expected.value) {
          return yield* new StoreError({
            image: spec.name,
            reason:
              `Checksum mismatch for ${source.describe}: expected ${expected.type} ${expected.value}, got ${actual}`,
          })
        }
      }
    })

  /** Fetch and publish an image the store lacks; holds the name's lock throughout. */
  const fetchAndPublish = (spec: ImageSpec, file: string) =>
    Effect.gen(function* () {
      yield* lockName(spec.name)
      // Another process may have published it while this one waited for the lock.
      if (yield* present(spec.name, file)) return yield* stored(spec.name, file)
      const source = yield* fetchSourceOf(spec)
      yield* attempt(spec.name, `Cannot clean ${working}`, () => sweepStale(working))
      const downloaded = yield* workingFile(spec.name, "part")
      const converted = yield* workingFile(spec.name, "qcow2")
      yield* reporter.info(`Pulling '${spec.name}' from ${source.describe}`)
      yield* download(spec, source, downloaded)
      const info = yield* disks.info(downloaded)
      if (info.backingFile !== undefined) {
        // Following it would read whatever host file the image names.
        return yield* new StoreError({
          image: spec.name,
          reason:
            `The image from ${source.describe} refers to a backing file (${info.backingFile})`,
        })
      }
      yield* disks.convert({ from: downloaded, to: converted, fromFormat: info.format })
      yield* publish(spec.name, converted, file, { force: false, readOnly: true }).pipe(
        // Only this process writes the name while it holds the lock.
        Effect.catchTag("ImageExists", () => Effect.void),
      )
      return yield* stored(spec.name, file)
    })

  const resolve: ImageStoreShape["resolve"] = Effect.fn("ImageStore.resolve")(
    function* (text: string) {
      const spec = yield* parseImageSpec(text)
      const file = pathOf(spec.name)
      if (yield* present(spec.name, file)) return yield* stored(spec.name, file)
      return yield* Effect.scoped(fetchAndPublish(spec, file))
    },
  )

  const lookup: ImageStoreShape["lookup"] = Effect.fn("ImageStore.lookup")(
    function* (text: string) {
      const spec = yield* parseImageSpec(text)
      const found = yield* Effect.promise(() => isPresent(pathOf(spec.name)).catch(() => false))
      if (!found) {
        // Only what can be checked without fetching: a name that spells no source, a missing file.
        const source = yield* fetchSourceOf(spec)
        if (source._tag === "File" && !(yield* Effect.promise(() => isPresent(source.path)))) {
          return yield* new StoreError({
            image: spec.name,
            reason: `Image file '${source.path}' does not exist`,
          })
        }
      }
      return { name: spec.name, present: found }
    },
  )

  const begin: ImageStoreShape["begin"] = Effect.fn("ImageStore.begin")(function* (
    target: PublishTarget,
    { force }: { readonly force: boolean },
  ) {
    const name = target.name
    if (target._tag === "Store" && (name === "" || name.startsWith("."))) {
      return yield* new StoreError({ image: name, reason: `Invalid image name '${name}'` })
    }
    const destination = target._tag === "Store" ? pathOf(name) : path.resolve(target.path)
    if (!force && (yield* present(name, destination))) {
      return yield* new ImageExists({ name, path: destination })
    }
    let committed = false
    const workPath: string = yield* Effect.acquireRelease(
      Effect.sync(() =>
        target._tag === "Store"
          ? path.join(working, workingFileName(encodeImageName(name), "qcow2"))
          : path.join(
            path.dirname(destination),
            `.${path.basename(destination)}.${Deno.pid}.${crypto.randomUUID()}.tmp`,
          )
      ),
      (file) =>
        committed ? Effect.void : Effect.promise(() => removeIfPresent(file).catch(() => {})),
    )
    const commit = Effect.gen(function* () {
      yield* publish(name, workPath, destination, { force, readOnly: target._tag === "Store" })
      committed = true
      return yield* stored(name, destination)
    }).pipe(Effect.withSpan("ImageStore.commit"))
    return { path: workPath, target, commit }
  })

  const list: ImageStoreShape["list"] = Effect.gen(function* () {
    const files = yield* attempt(root, `Cannot list ${root}`, async () => {
      const names: Array<string> = []
      for await (const entry of Deno.readDir(root)) {
        if (entry.isFile && !entry.name.startsWith(".")) names.push(entry.name)
      }
      return names
    })
    const images = yield* Effect.forEach(files, (fileName) => {
      const file = path.join(root, fileName)
      return stored(decodeImageName(fileName), file).pipe(
        // Removed while we listed: not an error, just not there any more.
        Effect.map((image): StoredImage | undefined => image),
        Effect.catchTag("DiskImageError", (error) =>
          Effect.flatMap(
            Effect.promise(() => isPresent(file).catch(() => true)),
            (still) => still ? Effect.fail(error) : Effect.succeed(undefined),
          )),
      )
    })
    return images.filter((image) => image !== undefined).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0
    )
  }).pipe(Effect.withSpan("ImageStore.list"))

  const remove: ImageStoreShape["remove"] = Effect.fn("ImageStore.remove")(function* (name) {
    const file = pathOf(name)
    yield* Effect.tryPromise({
      try: () => Deno.remove(file),
      catch: (error) =>
        new StoreError({
          image: name,
          reason: error instanceof Deno.errors.NotFound
            ? `No image named '${name}' in ${root}`
            : `Cannot remove image '${name}': ${reasonOf(error)}`,
        }),
    })
  })

  return { root, resolve, lookup, begin, list, remove } satisfies ImageStoreShape
})

/** Where to fetch an image from, with the words to show the user. */
type FetchSource =
  & (Exclude<ImageSource, { readonly _tag: "Named" }>)
  & { readonly describe: string; readonly label: string }

const fetchSourceOf = (spec: ImageSpec): Effect.Effect<FetchSource, StoreError> => {
  const source = spec.source
  switch (source._tag) {
    case "File":
      return Effect.succeed({ ...source, describe: source.path, label: `Copying ${spec.name}` })
    case "Http":
      return Effect.succeed({ ...source, describe: source.url, label: `Downloading ${spec.name}` })
    case "Vagrant":
      return Effect.succeed(vagrantSource(source.box))
    case "Named": {
      const box = parseVagrantBox(spec.name)
      return box === undefined
        ? Effect.fail(
          new StoreError({
            image: spec.name,
            reason: `No image named '${spec.name}' found in the store, and no version provided, ` +
              `so it cannot be downloaded (a Vagrant box is named owner/box:version)`,
          }),
        )
        : Effect.succeed(vagrantSource(box))
    }
  }
}

const vagrantSource = (box: { readonly box: string; readonly version: string }): FetchSource => ({
  _tag: "Vagrant",
  box,
  describe: `Vagrant box ${box.box}:${box.version}`,
  label: `Downloading ${box.box}:${box.version}`,
})

/** The ImageStore on the directory `backend` (created if missing). */
export const ImageStoreDirectory = (
  backend: string,
  options: ImageStoreDirectoryOptions = {},
): Layer.Layer<ImageStore, StoreError, DiskImages | Reporter> =>
  Layer.effect(ImageStore, makeImageStoreDirectory(backend, options))
