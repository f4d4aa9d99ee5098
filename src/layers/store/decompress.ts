/**
 * On-the-fly decompression of fetched images, chosen by the content's magic bytes, never by the
 * name. gzip and zstd use Deno's built-in zlib; xz uses xz-decompress (xz-embedded compiled to
 * WebAssembly, so no native code); bzip2 uses the host's `bzip2`, because the JavaScript
 * decoders are several times slower and do not apply back-pressure.
 */
import { Duplex } from "node:stream"
import * as zlib from "node:zlib"
import xzDecompress from "xz-decompress"

export type Compression = "gzip" | "bzip2" | "xz" | "zstd"

const MAGIC: ReadonlyArray<readonly [Compression, ReadonlyArray<number>]> = [
  ["gzip", [0x1f, 0x8b]],
  ["bzip2", [0x42, 0x5a, 0x68]],
  ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
]

/** The compression that `head` (the first bytes of a stream) starts with, if any. */
export const sniffCompression = (head: Uint8Array): Compression | undefined =>
  MAGIC.find(([, magic]) => magic.every((byte, i) => head[i] === byte))?.[0]

/** A failure whose message is fit for the user as it is. */
export class SourceError extends Error {}

/** Read the first `count` bytes of `stream` without consuming them: returns them and the whole. */
export const peek = async (
  stream: ReadableStream<Uint8Array>,
  count: number,
): Promise<{ readonly head: Uint8Array; readonly stream: ReadableStream<Uint8Array> }> => {
  const reader = stream.getReader()
  const chunks: Array<Uint8Array> = []
  let length = 0
  let ended = false
  while (length < count) {
    const { done, value } = await reader.read()
    if (done) {
      ended = true
      break
    }
    chunks.push(value)
    length += value.length
  }
  const head = new Uint8Array(length)
  let offset = 0
  for (const chunk of chunks) {
    head.set(chunk, offset)
    offset += chunk.length
  }
  const whole = new ReadableStream<Uint8Array>({
    start(controller) {
      if (head.length > 0) controller.enqueue(head)
      if (ended) controller.close()
    },
    async pull(controller) {
      const { done, value } = await reader.read()
      if (done) controller.close()
      else controller.enqueue(value)
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 })
  return { head, stream: whole }
}

const throughNode = (
  stream: ReadableStream<Uint8Array>,
  transform: Duplex,
): ReadableStream<Uint8Array> =>
  stream.pipeThrough(
    Duplex.toWeb(transform) as unknown as TransformStream<Uint8Array, Uint8Array>,
  )

/** `bzip2 -dc` as a stream transform; a missing tool or a failed exit errors the output. */
const throughBzip2 = (stream: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> => {
  let child: Deno.ChildProcess
  try {
    child = new Deno.Command("bzip2", {
      args: ["-dc"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn()
  } catch (error) {
    throw error instanceof Deno.errors.NotFound
      ? new SourceError("The image is bzip2-compressed but 'bzip2' is not installed")
      : error
  }
  const feeding = stream.pipeTo(child.stdin).catch((error) => {
    try {
      child.kill()
    } catch { /* already gone */ }
    throw error
  })
  const reader = child.stdout.getReader()
  const stderr = new Response(child.stderr).text()
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read()
      if (!done) return controller.enqueue(value)
      await feeding
      const status = await child.status
      if (!status.success) {
        const message = (await stderr).trim()
        controller.error(new SourceError(`bzip2 could not decompress the image: ${message}`))
      } else controller.close()
    },
    async cancel() {
      try {
        child.kill()
      } catch { /* already gone */ }
      await reader.cancel().catch(() => {})
    },
  }, { highWaterMark: 0 })
}

/** `stream`, decompressed when its content is compressed (once: nested layers are left alone). */
export const decompressed = async (
  stream: ReadableStream<Uint8Array>,
): Promise<
  { readonly compression: Compression | undefined; stream: ReadableStream<Uint8Array> }
> => {
  const peeked = await peek(stream, 6)
  const compression = sniffCompression(peeked.head)
  switch (compression) {
    case undefined:
      return { compression, stream: peeked.stream }
    case "gzip":
      return { compression, stream: throughNode(peeked.stream, zlib.createGunzip()) }
    case "zstd":
      return { compression, stream: throughNode(peeked.stream, zlib.createZstdDecompress()) }
    case "xz":
      return { compression, stream: new xzDecompress.XzReadableStream(peeked.stream) }
    case "bzip2":
      return { compression, stream: throughBzip2(peeked.stream) }
  }
}
