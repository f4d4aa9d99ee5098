/**
 * Bodies gathered into a ring of buffers: whole chunks of the ring's size, the same bytes as the
 * source, nothing read before it is asked for, the ring's buffers really used again, and what
 * arrived before a failure coming out before it.
 */
import assert from "node:assert/strict"
import { NothingArrived } from "../../src/domain/errors/network.ts"
import { BufferRing, gathered } from "../../src/layers/bulk_fetch.ts"
import { concatBytes as concat } from "../../src/domain/bytes.ts"

const pattern = (length: number) => Uint8Array.from({ length }, (_, i) => (i * 7 + 3) % 251)

/** A source of `bytes` in pieces of `piece`, as a byte stream (BYOB) or a default one. */
const source = (
  bytes: Uint8Array,
  piece: number,
  options: { readonly byob: boolean; readonly failAt?: number },
) => {
  let offset = 0
  const counter = { pulls: 0 }
  const next = () => {
    counter.pulls++
    if (options.failAt !== undefined && offset >= options.failAt) throw new Error("dropped")
    const end = Math.min(bytes.length, offset + piece)
    const chunk = bytes.slice(offset, end)
    offset = end
    return chunk
  }
  const stream = options.byob
    ? new ReadableStream({
      type: "bytes",
      pull(controller) {
        const chunk = next()
        if (chunk.length === 0) {
          controller.close()
          controller.byobRequest?.respond(0)
          return
        }
        const request = controller.byobRequest
        if (request?.view) {
          const view = new Uint8Array(
            request.view.buffer,
            request.view.byteOffset,
            request.view.byteLength,
          )
          const take = Math.min(view.length, chunk.length)
          view.set(chunk.subarray(0, take))
          // What does not fit goes back to the source.
          offset -= chunk.length - take
          request.respond(take)
        } else {
          controller.enqueue(chunk)
        }
      },
    }, { highWaterMark: 0 })
    : new ReadableStream<Uint8Array>({
      pull(controller) {
        const chunk = next()
        if (chunk.length === 0) controller.close()
        else controller.enqueue(chunk)
      },
    }, { highWaterMark: 0 })
  return { stream: stream as ReadableStream<Uint8Array>, counter }
}

/** Every chunk, copied as it arrives (a consumer that holds none). */
const drain = async (stream: ReadableStream<Uint8Array>) => {
  const reader = stream.getReader()
  const chunks: Array<Uint8Array> = []
  const views: Array<Uint8Array> = []
  for (;;) {
    const next = await reader.read()
    if (next.done) return { chunks, views }
    chunks.push(next.value.slice())
    views.push(next.value)
  }
}

for (const byob of [true, false]) {
  const kind = byob ? "a byte stream" : "a default stream"

  Deno.test(`gathered (${kind}): whole chunks of the ring's size, the source's bytes`, async () => {
    const bytes = pattern(100)
    const { stream } = source(bytes, 7, { byob })
    const { chunks } = await drain(gathered(stream, new BufferRing(3, 16)))
    assert.deepEqual(chunks.map((chunk) => chunk.length), [16, 16, 16, 16, 16, 16, 4])
    assert.deepEqual(concat(chunks), bytes)
  })

  Deno.test(`gathered (${kind}): the ring's buffers are used again`, async () => {
    const { stream } = source(pattern(64), 16, { byob })
    const { views, chunks } = await drain(gathered(stream, new BufferRing(2, 16)))
    assert.equal(chunks.length, 4)
    // The third chunk is in the first one's buffer.
    assert.equal(views[0]!.buffer, views[2]!.buffer)
    assert.deepEqual(views[0], chunks[2])
    assert.notDeepEqual(chunks[0], chunks[2])
  })

  Deno.test(`gathered (${kind}): nothing is read before it is asked for`, async () => {
    const { stream, counter } = source(pattern(64), 8, { byob })
    const reader = gathered(stream, new BufferRing(4, 16)).getReader()
    await new Promise((resolve) => setTimeout(resolve, 10))
    assert.equal(counter.pulls, 0)
    const first = await reader.read()
    assert.equal(first.value?.length, 16)
    await new Promise((resolve) => setTimeout(resolve, 10))
    // Two pieces of 8 for the one chunk asked for, none ahead.
    assert.equal(counter.pulls, 2)
    await reader.cancel()
  })
}

for (const byob of [true, false]) {
  Deno.test(`gathered (${byob ? "a byte stream" : "a default stream"}): the bytes before a failure come out, then it`, async () => {
    const bytes = pattern(64)
    const { stream } = source(bytes, 8, { byob, failAt: 40 })
    const reader = gathered(stream, new BufferRing(4, 16)).getReader()
    const got: Array<Uint8Array> = []
    const failure = await (async () => {
      for (;;) {
        try {
          const next = await reader.read()
          if (next.done) return undefined
          got.push(next.value.slice())
        } catch (error) {
          return error
        }
      }
    })()
    assert.ok(failure instanceof Error && failure.message === "dropped")
    assert.deepEqual(concat(got), bytes.subarray(0, 40))
  })
}

Deno.test("gathered with an idle bound: the bytes before a silence come out, then NothingArrived", async () => {
  const bytes = pattern(24)
  let sent = false
  const silent = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (!sent) {
        sent = true
        controller.enqueue(bytes.slice())
      }
      // Then nothing, ever: the pull never settles.
      return new Promise(() => {})
    },
  }, { highWaterMark: 0 })
  const reader = gathered(silent, new BufferRing(4, 64), 50).getReader()
  const started = performance.now()
  const first = await reader.read()
  assert.deepEqual(first.value?.slice(), bytes)
  const failure = await reader.read().then(() => undefined, (error: unknown) => error)
  assert.ok(failure instanceof NothingArrived, String(failure))
  assert.equal(
    failure.message,
    `no byte for 0.05 s (TRANSIENT_NETWORK_TIMEOUT sets how long to wait)`,
  )
  assert.ok(performance.now() - started < 2000)
})
