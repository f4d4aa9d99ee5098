/**
 * Opening an image's source as a byte stream: a local file or an HTTP(S) URL.
 */
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import type * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import type { ResponseError } from "@effect/platform/HttpClientError"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { STATUS_CODES } from "node:http"
import type { RegistryError } from "../../domain/errors/registry.ts"
import { SourceUnavailable } from "../../domain/errors/store.ts"
import { withBulkFetch } from "../bulk_fetch.ts"
import { answerWithin } from "../network_reads.ts"

export interface OpenedSource {
  /** The bytes; a failure to read them midway is the platform's error, for the caller to map. */
  readonly bytes: Stream.Stream<
    Uint8Array,
    PlatformError | ResponseError | SourceUnavailable | RegistryError
  >
  /** The byte count announced by the server or the file system, when known. */
  readonly size: number | undefined
  /** A checksum the source itself publishes (Vagrant metadata), to verify the bytes against. */
  readonly checksum?: { readonly type: string; readonly value: string }
  /**
   * An archive the image is one file of: a Vagrant box (its `box.img`), a containerDisk's layer
   * (the one file under `disk/`).
   */
  readonly archive?: "VagrantBox" | "ContainerDisk"
}

/** Large reads: each chunk costs a trip through the Stream and the file system. */
const CHUNK = 1024 * 1024

/** The rest of `file`, chunk by chunk. */
const fileBytes = (file: FileSystem.File): Stream.Stream<Uint8Array, PlatformError> =>
  Stream.repeatEffectOption(
    file.readAlloc(CHUNK).pipe(
      Effect.mapError(Option.some),
      Effect.flatMap(Option.match({
        onNone: () => Effect.fail(Option.none()),
        onSome: (chunk) => Effect.succeed(chunk),
      })),
    ),
  )

/** The file `path`, open until the scope closes. */
export const openFile = (
  image: string,
  path: string,
): Effect.Effect<OpenedSource, SourceUnavailable, FileSystem.FileSystem | Scope.Scope> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const unreadable = (fields: { readonly cause?: unknown; readonly detail?: string }) =>
      new SourceUnavailable({ image, protocol: "file", location: path, ...fields })
    const file = yield* fs.open(path, { flag: "r" }).pipe(
      Effect.mapError((cause) => unreadable({ cause })),
    )
    const info = yield* file.stat.pipe(Effect.mapError((cause) => unreadable({ cause })))
    if (info.type !== "File") return yield* unreadable({ detail: "not a regular file" })
    return { bytes: fileBytes(file), size: Number(info.size) }
  })

/**
 * GET `url`; closing the scope aborts the request. A request that fails, gets no answer within
 * `timeout`, or is answered with a status outside 2xx is SourceUnavailable. A `streamed` body is
 * an image's, read as a stream (bulk_fetch.ts, each read bounded by `timeout`), never whole.
 */
export const get = (
  image: string,
  url: string,
  timeout: Duration.Duration,
  streamed = false,
): Effect.Effect<
  HttpClientResponse.HttpClientResponse,
  SourceUnavailable,
  HttpClient.HttpClient | Scope.Scope
> =>
  Effect.gen(function* () {
    const client = (yield* HttpClient.HttpClient).pipe(
      HttpClient.withTracerPropagation(false),
      HttpClient.withScope,
    )
    const unavailable = (cause: unknown) =>
      new SourceUnavailable({ image, protocol: "http", location: url, cause })
    const response = yield* answerWithin(
      (sent) =>
        Effect.zipRight(sent, client.get(url)).pipe(
          streamed ? withBulkFetch(timeout) : identity,
          Effect.mapError((error) => unavailable(error.cause ?? error)),
        ),
      timeout,
      unavailable,
    )
    if (response.status < 200 || response.status >= 300) {
      return yield* new SourceUnavailable({
        image,
        protocol: "http",
        location: url,
        status: response.status,
        statusText: STATUS_CODES[response.status],
      })
    }
    return response
  })

/** The body's length, when the server announced it for the bytes we will read. */
const announcedSize = (headers: Headers.Headers): number | undefined => {
  const length = headers["content-length"]
  if (length === undefined || headers["content-encoding"]) return undefined
  const size = Number(length)
  return Number.isSafeInteger(size) && size >= 0 ? size : undefined
}

/**
 * The body of `url`, downloading until the scope closes; a read that brings nothing for
 * `timeout` fails it.
 */
export const openUrl = (
  image: string,
  url: string,
  timeout: Duration.Duration,
): Effect.Effect<OpenedSource, SourceUnavailable, HttpClient.HttpClient | Scope.Scope> =>
  Effect.map(get(image, url, timeout, true), (response) => ({
    bytes: response.stream.pipe(
      Stream.mapError((error) =>
        error.reason === "EmptyBody"
          ? new SourceUnavailable({
            image,
            protocol: "http",
            location: url,
            detail: "empty response",
          })
          : error
      ),
    ),
    size: announcedSize(response.headers),
  }))
