/**
 * `fetch` whose response bodies come in chunks of 1 MiB instead of the ~64 KiB a socket read
 * gives: every chunk goes through each stage of a download's Stream (progress, digest, archive,
 * size cap, sparse writes), and with small chunks that work, not the network, set the pace.
 * Provided as FetchHttpClient's `Fetch` where bodies are large.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Effect from "effect/Effect"

const CHUNK = 1024 * 1024

/**
 * `source`'s bytes in chunks of `size` (the last one shorter). When `source` fails, what was
 * gathered comes out first, so that a resumed download starts after the bytes that arrived.
 */
export const gathered = (
  source: ReadableStream<Uint8Array>,
  size = CHUNK,
): ReadableStream<Uint8Array> => {
  const reader = source.getReader()
  let failure: { readonly cause: unknown } | undefined
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (failure !== undefined) return controller.error(failure.cause)
      let buffer: Uint8Array | undefined
      let filled = 0
      while (filled < size) {
        let next: ReadableStreamReadResult<Uint8Array>
        try {
          next = await reader.read()
        } catch (cause) {
          failure = { cause }
          break
        }
        if (next.done) break
        const chunk = next.value
        // A chunk as large as ours goes through as it is when nothing is gathered.
        if (buffer === undefined && chunk.length >= size) {
          controller.enqueue(chunk)
          return
        }
        buffer ??= new Uint8Array(size)
        const take = Math.min(size - filled, chunk.length)
        buffer.set(chunk.subarray(0, take), filled)
        filled += take
        if (take < chunk.length) {
          controller.enqueue(buffer)
          controller.enqueue(chunk.subarray(take))
          return
        }
      }
      if (buffer !== undefined && filled > 0) controller.enqueue(buffer.subarray(0, filled))
      if (failure !== undefined) return
      if (filled < size) controller.close()
    },
    cancel(reason) {
      return reader.cancel(reason)
    },
  })
}

/** `fetch`, its response body gathered into 1 MiB chunks. */
export const bulkFetch: typeof globalThis.fetch = async (input, init) => {
  const response = await globalThis.fetch(input, init)
  if (response.body === null) return response
  return new Response(gathered(response.body), {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  })
}

/** `effect` with FetchHttpClient fetching through `bulkFetch`. */
export const withBulkFetch = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(effect, FetchHttpClient.Fetch, bulkFetch)
