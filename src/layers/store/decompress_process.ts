/**
 * Decompression by a host tool (`xz -dc`, `bzip2 -dc`, `zstd -dc`), as a Stream transform: the
 * JavaScript bzip2 decoders are several times slower and do not apply back-pressure, the runtime's
 * zstd throws on corrupt input instead of failing the stream, and `xz` decodes twice as fast as
 * xz-embedded in WebAssembly (and on every core, for images compressed in blocks). The process is killed when the stream
 * ends or is interrupted.
 */
import * as Command from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import { DecompressionFailed, DecompressorMissing } from "../../domain/errors/store.ts"

const EMPTY = new Uint8Array(0)

/** The tool stopped reading its input: its exit status says why, not the closed pipe. */
class InputClosed extends Data.TaggedError("InputClosed") {}

/** Bytes of an image being fetched, and what it is about (for errors). */
export interface Fetched {
  readonly image: string
  readonly source: string
}

/** A stream of `self`'s bytes decompressed: it can also fail to decompress, or lack its tool. */
export type Decompressed<E, R> = Stream.Stream<
  Uint8Array,
  E | DecompressionFailed | DecompressorMissing,
  R | CommandExecutor.CommandExecutor
>

/** The tools, and how they are told to decompress standard input to standard output. */
const TOOLS = {
  // -T0: an image compressed in blocks (`xz -T`) is decoded on every core.
  xz: ["xz", "-dcq", "-T0"],
  bzip2: ["bzip2", "-dc"],
  zstd: ["zstd", "-dcq"],
} as const

export const throughTool = <E, R>(
  self: Stream.Stream<Uint8Array, E, R>,
  about: Fetched,
  compression: keyof typeof TOOLS,
): Decompressed<E, R> =>
  Stream.unwrapScoped(Effect.gen(function* () {
    const failed = (fields: { readonly cause?: unknown; readonly detail?: string }) =>
      new DecompressionFailed({ ...about, compression, ...fields })
    const [tool, ...args] = TOOLS[compression]
    const process = yield* Command.start(Command.make(tool, ...args)).pipe(
      Effect.mapError((cause) =>
        cause._tag === "SystemError" && cause.reason === "NotFound"
          ? new DecompressorMissing({ image: about.image, compression, tool })
          : failed({ cause })
      ),
    )
    const stderr = yield* process.stderr.pipe(
      Stream.decodeText(),
      Stream.mkString,
      Effect.forkScoped,
    )
    // The platform's stdin sink waits for the pipe to drain only between the items of one chunk,
    // never after its last: an empty item after each chunk makes every write wait, so a tool
    // slower than the download (xz) holds back the download instead of piling it up in memory.
    const paced = Stream.mapChunks(self, Chunk.flatMap((bytes) => Chunk.make(bytes, EMPTY)))
    const feed = Stream.run(paced, Sink.mapError(process.stdin, () => new InputClosed())).pipe(
      Effect.catchIf(
        (error): error is InputClosed => error instanceof InputClosed,
        () => Effect.void,
      ),
    )
    const exited = Effect.gen(function* () {
      const code = yield* process.exitCode.pipe(Effect.mapError((cause) => failed({ cause })))
      if (code === 0) return
      const report = yield* Fiber.join(stderr).pipe(Effect.orElseSucceed(() => ""))
      return yield* failed({ detail: report.trim() })
    })
    return process.stdout.pipe(
      Stream.mapError((cause) => failed({ cause })),
      Stream.merge(Stream.drain(Stream.fromEffect(feed)), { haltStrategy: "left" }),
      Stream.concat(Stream.drain(Stream.fromEffect(exited))),
    )
  }))
