/**
 * The fetch of an image's bytes into a working file, as one Stream: the source's bytes →
 * progress → hashing → decompression → `box.img` out of a Vagrant box archive → the sparse file.
 * A plain image compressed with xz or zstd is written by the decompressor itself instead.
 * Memory stays bounded whatever the image size. The size and checksum are verified at the end.
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import type { PlatformError } from "@effect/platform/Error"
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as HttpClient from "@effect/platform/HttpClient"
import type { ResponseError } from "@effect/platform/HttpClientError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import { createHash, getHashes, type Hash } from "node:crypto"
import type { ImageSpec } from "../../domain/image_spec.ts"
import {
  BoxArchiveInvalid,
  ChecksumMismatch,
  ImageTooLarge,
  type SourceUnavailable,
  type StoreError,
  StoreIoError,
  TransferIncomplete,
} from "../../domain/errors/store.ts"
import { qcow2FileLimit } from "../../domain/image_format.ts"
import { isContainerDiskEntry } from "../../domain/oci_manifest.ts"
import { NotADiskImage, type RegistryError } from "../../domain/errors/registry.ts"
import type { Progress } from "../../services/reporter.ts"
import { Reporter } from "../../services/reporter.ts"
import { decoded, sniffed } from "./decompress.ts"
import { onPath } from "../host_process.ts"
import { decompressToFile, FILE_TOOLS, hasFileTool } from "./decompress_to_file.ts"
import type { FetchSource } from "./fetch_source.ts"
import { type OpenedSource, openFile, openUrl } from "./sources.ts"
import { sparseFile } from "./sparse_file.ts"
import { tarEntry, type TarProblem } from "./tar_entry.ts"
import { openVagrantBox } from "./vagrant_source.ts"

/** The bytes of a file, URL or Vagrant box (registries have their own: oci_source.ts). */
export const openSource = (
  image: string,
  source: Exclude<FetchSource, { readonly _tag: "Oci" }>,
  limits: Pick<FetchLimits, "vagrantUrl" | "timeout">,
) => {
  switch (source._tag) {
    case "File":
      return openFile(image, source.path)
    case "Http":
      return openUrl(image, source.url, limits.timeout)
    case "Vagrant":
      return openVagrantBox(image, limits.vagrantUrl, source.box, limits.timeout)
  }
}

/** The progress stage: each chunk advances the bar and the count of bytes received. */
const reported =
  (progress: Progress, received: Ref.Ref<number>) =>
  <E, R>(self: Stream.Stream<Uint8Array, E, R>) =>
    Stream.tap(self, (chunk) =>
      Effect.zipRight(
        Ref.update(received, (count) => count + chunk.length),
        progress.advance(chunk.length),
      ))

/** The cap: more than `limit` bytes of image fail the fetch (a decompression bomb, a wrong file). */
const capped =
  (limit: number, tooLarge: (limit: number) => ImageTooLarge) =>
  <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | ImageTooLarge, R> =>
    Stream.mapAccumEffect(self, { total: 0, limit }, (state, chunk) => {
      // A qcow2 says how large it is: it may not grow past that (plus its metadata).
      const limit = state.total === 0
        ? Math.min(state.limit, qcow2FileLimit(chunk) ?? Infinity)
        : state.limit
      const total = state.total + chunk.length
      return total > limit
        ? Effect.fail(tooLarge(limit))
        : Effect.succeed([{ total, limit }, chunk] as const)
    })

/** The hashing stage: every byte of the source goes through `hash`. */
const hashed = (hash: Hash) => <E, R>(self: Stream.Stream<Uint8Array, E, R>) =>
  Stream.tap(self, (chunk) => Effect.sync(() => hash.update(chunk)))

/** A hash of the `type` the source's checksum is in; none (and a warning) for unknown types. */
const hashFor = (type: string, describe: string) =>
  getHashes().includes(type) ? Effect.succeed(createHash(type)) : Effect.as(
    Effect.flatMap(
      Reporter,
      (reporter) => reporter.warn(`Cannot verify ${describe}: unknown checksum type '${type}'`),
    ),
    undefined,
  )

const boxProblem = (problem: TarProblem) => problem === "Several" ? "Missing" : problem

export const NO_DISK_IN_LAYER = "its layer holds no file under disk/"

/** Why a containerDisk's layer yields no disk, as NotADiskImage says it. */
const DISK_PROBLEM: Record<TarProblem, string> = {
  Missing: NO_DISK_IN_LAYER,
  Several: "its layer holds several files under disk/ (a containerDisk has one)",
  Truncated: "its layer is a truncated tar archive",
  Oversized: "its layer has a tar record over 1 MiB",
}

/** The image and its source, as errors name them. */
interface About {
  readonly image: string
  readonly source: string
}

/**
 * A read that fails midway: TransferIncomplete, with the count of bytes `received` so far of
 * the `expected`; other failures stay what they are.
 */
const failedMidway = (about: About, expected: number | undefined, received: Ref.Ref<number>) =>
(
  error: PlatformError | ResponseError | SourceUnavailable | RegistryError,
): Stream.Stream<never, SourceUnavailable | RegistryError | TransferIncomplete> =>
  error._tag !== "BadArgument" && error._tag !== "SystemError" &&
    error._tag !== "ResponseError" && error._tag !== "RegistryTransferInterrupted"
    ? Stream.fail(error)
    : Stream.fromEffect(
      Effect.flatMap(Ref.get(received), (count) =>
        new TransferIncomplete({
          ...about,
          received: count,
          expected,
          cause: error._tag === "ResponseError" || error._tag === "RegistryTransferInterrupted"
            ? error.cause ?? error
            : error,
        })),
    )

/** The archive stage: the image taken out of a Vagrant box or a containerDisk's layer. */
const unarchived = (archive: OpenedSource["archive"], about: About) =>
<E, R>(
  contents: Stream.Stream<Uint8Array, E, R>,
): Stream.Stream<Uint8Array, E | BoxArchiveInvalid | NotADiskImage, R> => {
  switch (archive) {
    case "VagrantBox":
      return tarEntry(
        (entry) => entry === "box.img" || entry.endsWith("/box.img"),
        (problem) => new BoxArchiveInvalid({ ...about, problem: boxProblem(problem) }),
      )(contents)
    case "ContainerDisk":
      return tarEntry(
        isContainerDiskEntry,
        (problem) => new NotADiskImage({ reference: about.source, reason: DISK_PROBLEM[problem] }),
        true,
      )(contents)
    case undefined:
      return contents
  }
}

/**
 * Where Vagrant boxes are looked up, the most bytes an image may have once decompressed, and
 * how long an HTTP read may bring nothing (`TRANSIENT_NETWORK_TIMEOUT`).
 */
export interface FetchLimits {
  readonly vagrantUrl: string
  readonly maxImageBytes: number
  readonly timeout: Duration.Duration
}

/**
 * Stream `opened` (the bytes of `source`) into the new file `destination`: decompressed, the
 * image taken out of its archive, verified.
 */
export const download = (
  spec: ImageSpec,
  source: Pick<FetchSource, "describe" | "label">,
  opened: OpenedSource,
  destination: string,
  limits: Pick<FetchLimits, "maxImageBytes">,
): Effect.Effect<
  void,
  StoreError | RegistryError | NotADiskImage,
  | FileSystem.FileSystem
  | HttpClient.HttpClient
  | CommandExecutor.CommandExecutor
  | Reporter
  | Scope.Scope
> =>
  Effect.gen(function* () {
    const reporter = yield* Reporter
    const image = spec.name
    const about = { image, source: source.describe }
    const expected = spec.sha256 !== undefined
      ? { type: "sha256", value: spec.sha256 }
      : opened.checksum
    const hash = expected === undefined ? undefined : yield* hashFor(expected.type, source.describe)
    const received = yield* Ref.make(0)
    const progress = yield* reporter.progress(source.label, opened.size, { phase: "download" })

    const counted = opened.bytes.pipe(
      Stream.catchAll(failedMidway(about, opened.size, received)),
      reported(progress, received),
      // Read ahead while the chunks before are decompressed and written.
      Stream.buffer({ capacity: 4 }),
    )
    const digested = hash === undefined ? counted : hashed(hash)(counted)
    const tooLarge = (limit: number) =>
      new ImageTooLarge({ ...about, limit, declared: limit < limits.maxImageBytes })
    const written = Effect.gen(function* () {
      const sniff = yield* sniffed(digested)
      const compression = sniff.compression
      if (compression !== undefined) {
        yield* reporter.info(
          `'${image}' is ${compression}-compressed: decompressed as it downloads`,
        )
      }
      // A plain image goes from the decompressor straight into its file, when the tool can.
      if (
        opened.archive === undefined && compression !== undefined && hasFileTool(compression) &&
        (yield* onPath(FILE_TOOLS[compression][0]))
      ) {
        return yield* decompressToFile(
          sniff.bytes,
          about,
          compression,
          destination,
          limits.maxImageBytes,
          tooLarge,
        )
      }
      const unpacked = unarchived(opened.archive, about)(decoded(about, sniff))
      const file = sparseFile(destination).pipe(
        Sink.mapError((cause) =>
          new StoreIoError({ operation: "write", image, path: destination, cause })
        ),
      )
      return yield* Stream.run(capped(limits.maxImageBytes, tooLarge)(unpacked), file)
    })
    yield* written.pipe(Effect.scoped, Effect.ensuring(progress.done))

    const count = yield* Ref.get(received)
    if (opened.size !== undefined && count !== opened.size) {
      return yield* new TransferIncomplete({ ...about, received: count, expected: opened.size })
    }
    if (hash !== undefined && expected !== undefined) {
      const actual = hash.digest("hex")
      if (actual !== expected.value) {
        return yield* new ChecksumMismatch({
          ...about,
          algorithm: expected.type,
          expected: expected.value,
          actual,
        })
      }
    }
  })
