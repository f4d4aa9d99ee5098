/**
 * Large bodies without garbage: `fetch` whose response bodies come in chunks of 1 MiB read into
 * a ring of buffers that are used again and again, instead of a fresh buffer for each of the
 * ~64 KiB a socket read gives. Every chunk goes through each stage of a download's Stream
 * (progress, digest, archive, size cap, sparse writes): with small chunks that work, not the
 * network, sets the pace; and with fresh buffers V8 collects them too late, so a process that
 * streams gigabytes holds hundreds of megabytes of dead buffers.
 *
 * The price is a contract: a chunk's bytes are overwritten `RING_CHUNKS` chunks later. A
 * consumer holds at most `RING_CHUNKS - 1` chunks at once, or copies them (download.ts copies
 * what it hands to a decompressor, whose input queue has no bound). Use it for bodies read as a
 * stream, never for one read whole (`json`, `text`, `arrayBuffer`) that may be larger than
 * `RING_CHUNKS` chunks.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Effect from "effect/Effect"

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
  /** The source ended (or failed) after these bytes. */
  readonly ended: boolean
}

/** A byte stream's reads land here, then are copied: a failed read takes its buffer with it. */
const LANDING_BYTES = 256 * 1024

/**
 * `source`'s bytes in chunks of the ring's size (the last one shorter), each in a buffer of the
 * ring. A byte stream's bytes are read into one buffer used again (no buffer made per read);
 * another's come in its chunks. Nothing is read before it is asked for. When `source` fails,
 * what was gathered comes out first, so that a resumed download starts after the bytes that
 * arrived.
 */
export const gathered = (
  source: ReadableStream<Uint8Array>,
  ring = new BufferRing(),
): ReadableStream<Uint8Array> => {
  let failure: { readonly cause: unknown } | undefined

  /** Up to `most` next bytes (none at the end), valid until the next call. */
  let next: (most: number) => Promise<Uint8Array | undefined>
  let reader: ReadableStreamBYOBReader | ReadableStreamDefaultReader<Uint8Array>
  let byob: ReadableStreamBYOBReader | undefined
  try {
    byob = source.getReader({ mode: "byob" })
  } catch {
    byob = undefined
  }
  if (byob !== undefined) {
    const from = byob
    reader = from
    let landing = new ArrayBuffer(LANDING_BYTES)
    next = async (most) => {
      const read = await from.read(new Uint8Array(landing, 0, Math.min(most, LANDING_BYTES)))
      // The read moves the buffer into the one it returns.
      if (read.value !== undefined) landing = read.value.buffer as ArrayBuffer
      return read.done ? undefined : read.value
    }
  } else {
    const from = source.getReader()
    reader = from
    /** What did not fit in the chunk before. */
    let rest: Uint8Array | undefined
    next = async (most) => {
      let chunk = rest
      if (chunk === undefined) {
        const read = await from.read()
        if (read.done) return undefined
        chunk = read.value
      }
      rest = chunk.length > most ? chunk.subarray(most) : undefined
      return chunk.subarray(0, most)
    }
  }

  const fill = async (into: Uint8Array): Promise<Filled> => {
    let filled = 0
    while (filled < into.length) {
      let bytes: Uint8Array | undefined
      try {
        bytes = await next(into.length - filled)
      } catch (cause) {
        failure = { cause }
        return { bytes: into.subarray(0, filled), ended: true }
      }
      if (bytes === undefined) return { bytes: into.subarray(0, filled), ended: true }
      into.set(bytes, filled)
      filled += bytes.length
    }
    return { bytes: into, ended: false }
  }

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (failure !== undefined) return controller.error(failure.cause)
      const { bytes, ended } = await fill(ring.take())
      // `fill` may have set it.
      const failed = failure as { readonly cause: unknown } | undefined
      if (bytes.length > 0) controller.enqueue(bytes)
      if (failed !== undefined) {
        if (bytes.length === 0) controller.error(failed.cause)
      } else if (ended) {
        controller.close()
      }
    },
    cancel(reason) {
      return reader.cancel(reason)
    },
  }, { highWaterMark: 0 })
}

/** `fetch`, its response body gathered into the chunks of a ring (see above). */
export const bulkFetch: typeof globalThis.fetch = async (input, init) => {
  const response = await globalThis.fetch(input, init)
  if (response.body === null) return response
  return new Response(gathered(response.body), {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  })
}

/** `effect` with FetchHttpClient fetching through `bulkFetch`: for bodies read as streams. */
export const withBulkFetch = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(effect, FetchHttpClient.Fetch, bulkFetch)
