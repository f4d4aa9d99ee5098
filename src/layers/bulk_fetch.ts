/**
 * Large bodies without garbage: `fetch` whose response bodies come in chunks of 1 MiB read into
 * a ring of buffers that are used again and again, instead of a fresh buffer for each of the
 * ~64 KiB a socket read gives. Every chunk goes through each stage of a download's Stream
 * (progress, digest, archive, size cap, sparse writes): with small chunks that work, not the
 * network, sets the pace; and with fresh buffers V8 collects them too late, so a process that
 * streams gigabytes holds hundreds of megabytes of dead buffers.
 *
 * The price is a contract: a chunk's bytes are overwritten `RING_CHUNKS` chunks later. A
 * consumer holds at most `RING_CHUNKS - 1` chunks at once, or copies them (decompress.ts copies
 * what it hands to a decompressor, whose input queue has no bound). Use it for bodies read as a
 * stream, never for one read whole (`json`, `text`, `arrayBuffer`) that may be larger than
 * `RING_CHUNKS` chunks.
 *
 * A read that brings no byte for the network timeout fails the body with NothingArrived, after
 * the bytes gathered before it: the idle bound is on the socket's reads, not on the 1 MiB chunks,
 * so that a slow but live transfer is never taken for a dead one.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { NothingArrived } from "../domain/errors/network.ts"

/** The size of a chunk. */
export const CHUNK_BYTES = 1024 * 1024
/** Chunks handed out before a buffer is used again. */
export const RING_CHUNKS = 16

/** `count` buffers of `size` bytes, handed out in turn, each made when it is first needed. */
export class BufferRing {
  readonly #buffers: Array<Uint8Array | undefined>
  #turn = 0

  constructor(readonly count = RING_CHUNKS, readonly size = CHUNK_BYTES) {
    this.#buffers = new Array(count)
  }

  /** The next buffer: whatever was handed out from it `count` takes ago is overwritten now. */
  take(): Uint8Array {
    const slot = this.#turn
    this.#turn = (slot + 1) % this.count
    return this.#buffers[slot] ??= new Uint8Array(this.size)
  }
}

interface Filled {
  readonly bytes: Uint8Array
  /** The source ended after these bytes. */
  readonly ended: boolean
  /** The source failed after these bytes. */
  readonly failed?: { readonly cause: unknown }
}

/** Up to `most` next bytes of a source (none at its end), valid until the next call. */
type NextBytes = (most: number) => Promise<Uint8Array | undefined>

/** A byte stream's reads land here, then are copied: a failed read takes its buffer with it. */
const LANDING_BYTES = 256 * 1024

/** A byte stream's bytes, read into one buffer used again: no buffer made per read. */
const landedReads = (reader: ReadableStreamBYOBReader): NextBytes => {
  let landing = new ArrayBuffer(LANDING_BYTES)
  return async (most) => {
    const read = await reader.read(new Uint8Array(landing, 0, Math.min(most, LANDING_BYTES)))
    // The read moves the buffer into the one it returns.
    if (read.value !== undefined) landing = read.value.buffer as ArrayBuffer
    return read.done ? undefined : read.value
  }
}

/** Another stream's bytes, in its own chunks split where they do not fit. */
const splitReads = (reader: ReadableStreamDefaultReader<Uint8Array>): NextBytes => {
  /** What did not fit in the chunk before. */
  let rest: Uint8Array | undefined
  return async (most) => {
    let chunk = rest
    if (chunk === undefined) {
      const read = await reader.read()
      if (read.done) return undefined
      chunk = read.value
    }
    rest = chunk.length > most ? chunk.subarray(most) : undefined
    return chunk.subarray(0, most)
  }
}

/** `source`'s reader in BYOB mode, when it is a byte stream. */
const byobReader = (source: ReadableStream<Uint8Array>): ReadableStreamBYOBReader | undefined => {
  try {
    return source.getReader({ mode: "byob" })
  } catch {
    return undefined
  }
}

/** `next`, failed with NothingArrived when a read brings nothing for `idle` milliseconds. */
const boundedReads = (next: NextBytes, idle: number | undefined): NextBytes => {
  if (idle === undefined) return next
  return (most) => {
    let timer: ReturnType<typeof setTimeout> | undefined
    const silence = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new NothingArrived({ awaited: "byte", seconds: idle / 1000 })),
        idle,
      )
    })
    return Promise.race([next(most), silence]).finally(() => clearTimeout(timer))
  }
}

/** Fill `into` from `next`, up to the source's end or failure. */
const fill = async (next: NextBytes, into: Uint8Array): Promise<Filled> => {
  let filled = 0
  while (filled < into.length) {
    let bytes: Uint8Array | undefined
    try {
      bytes = await next(into.length - filled)
    } catch (cause) {
      return { bytes: into.subarray(0, filled), ended: true, failed: { cause } }
    }
    if (bytes === undefined) return { bytes: into.subarray(0, filled), ended: true }
    into.set(bytes, filled)
    filled += bytes.length
  }
  return { bytes: into, ended: false }
}

/**
 * `source`'s bytes in chunks of the ring's size (the last one shorter), each in a buffer of the
 * ring. Nothing is read before it is asked for. When `source` fails, what was gathered comes out
 * first, so that a resumed download starts after the bytes that arrived. With `idle`
 * (milliseconds), a read that brings nothing for that long is a failure.
 */
export const gathered = (
  source: ReadableStream<Uint8Array>,
  ring = new BufferRing(),
  idle?: number,
): ReadableStream<Uint8Array> => {
  const byob = byobReader(source)
  const reader = byob ?? source.getReader()
  const next = boundedReads(
    byob !== undefined
      ? landedReads(byob)
      : splitReads(reader as ReadableStreamDefaultReader<Uint8Array>),
    idle,
  )
  let failure: { readonly cause: unknown } | undefined

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (failure !== undefined) return controller.error(failure.cause)
      const { bytes, ended, failed } = await fill(next, ring.take())
      if (failed !== undefined && bytes.length === 0) return controller.error(failed.cause)
      if (bytes.length > 0) controller.enqueue(bytes)
      // A failure comes at the next pull, after the bytes before it.
      if (failed !== undefined) failure = failed
      else if (ended) controller.close()
    },
    cancel(reason) {
      return reader.cancel(reason)
    },
  }, { highWaterMark: 0 })
}

/**
 * `fetch`, its response body gathered into the chunks of a ring (see above), each read of it
 * bounded by `idle`.
 */
export const bulkFetch =
  (idle: Duration.Duration): typeof globalThis.fetch => async (input, init) => {
    const response = await globalThis.fetch(input, init)
    if (response.body === null) return response
    return new Response(gathered(response.body, new BufferRing(), Duration.toMillis(idle)), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    })
  }

/**
 * `effect` with FetchHttpClient fetching through `bulkFetch`, no read silent for more than
 * `idle`: for bodies read as streams.
 */
export const withBulkFetch =
  (idle: Duration.Duration) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.provideService(effect, FetchHttpClient.Fetch, bulkFetch(idle))
