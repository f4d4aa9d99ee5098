/**
 * Decompression by a host tool straight into the destination file: the tool's output never
 * passes through this process. Read from a pipe, a 2 GiB image is 32,768 reads of 64 KiB, each a
 * trip through the Stream that takes a core away from the decompressor; written by the tool
 * itself, a pull runs as fast as `xz -dc > file`. The tool writes holes for runs of zeros itself
 * (xz does on a regular file, zstd with `--sparse`), and RLIMIT_FSIZE (`prlimit`, util-linux)
 * stops it at the size limit.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { type ChildProcess, spawn } from "node:child_process"
import * as nodeFs from "node:fs"
import { qcow2FileLimit } from "../../domain/image_format.ts"
import { DecompressionFailed, ImageTooLarge, StoreIoError } from "../../domain/errors/store.ts"
import { diesWithParent, lastLines } from "../host_process.ts"
import type { Fetched } from "./decompress_process.ts"

/** The tools that can write a sparse file of their own, and how they are told to. */
export const FILE_TOOLS = {
  // -T0: an image compressed in blocks (`xz -T`) is decoded on every core.
  xz: ["xz", "-dcq", "-T0"],
  zstd: ["zstd", "-dcq", "--sparse"],
} as const

export type FileToolCompression = keyof typeof FILE_TOOLS

export const hasFileTool = (compression: string): compression is FileToolCompression =>
  compression in FILE_TOOLS

/** SIGXFSZ: the tool tried to write past RLIMIT_FSIZE. */
const FILE_TOO_LARGE = "SIGXFSZ"
const STDERR_BYTES = 4096

interface Outcome {
  readonly code: number | null
  readonly signal: string | null
  readonly stderr: string
}

/** The tool, started with its stdout on `fd`; killed when the scope closes before it exits. */
const startTool = (argv: ReadonlyArray<string>, fd: number) =>
  Effect.acquireRelease(
    Effect.async<{ readonly child: ChildProcess; readonly outcome: Promise<Outcome> }, Error>(
      (resume) => {
        const [program = "", ...args] = argv
        const child = spawn(program, args, { stdio: ["pipe", fd, "pipe"] })
        let stderr = ""
        // A write to a tool that has exited fails; its exit status says why, not the pipe.
        child.stdin?.on("error", () => {})
        child.stderr?.setEncoding("utf8")
        child.stderr?.on("data", (text: string) => {
          stderr = (stderr + text).slice(-STDERR_BYTES)
        })
        const outcome = new Promise<Outcome>((done) =>
          child.once("close", (code, signal) => done({ code, signal, stderr }))
        )
        child.once("spawn", () => resume(Effect.succeed({ child, outcome })))
        child.once("error", (error) => resume(Effect.fail(error)))
      },
    ),
    ({ child, outcome }) =>
      child.exitCode !== null || child.signalCode !== null ? Effect.void : Effect.zipRight(
        Effect.sync(() => child.kill("SIGKILL")),
        Effect.promise(() => outcome),
      ),
  )

/** Write `chunk` to the tool's stdin and wait until it is in the pipe (false: the pipe closed). */
const writeChunk = (child: ChildProcess, chunk: Uint8Array) =>
  Effect.async<boolean>((resume) => {
    const stdin = child.stdin
    if (stdin === null || stdin.destroyed) return resume(Effect.succeed(false))
    const closed = () => resume(Effect.succeed(false))
    stdin.once("error", closed)
    const written = () => {
      stdin.removeListener("error", closed)
      resume(Effect.succeed(true))
    }
    if (stdin.write(chunk)) written()
    else stdin.once("drain", written)
  })

/**
 * Decompress `self` (compressed with `compression`) into the new file `destination` (created
 * here, mode 0600), which may not grow past `limit` bytes, nor past the size a qcow2 header in it
 * declares. The result is the file's size.
 */
export const decompressToFile = <E, R>(
  self: Stream.Stream<Uint8Array, E, R>,
  about: Fetched,
  compression: FileToolCompression,
  destination: string,
  limit: number,
  tooLarge: (limit: number) => ImageTooLarge,
) =>
  Effect.scoped(Effect.gen(function* () {
    const failed = (fields: { readonly cause?: unknown; readonly detail?: string }) =>
      new DecompressionFailed({ ...about, compression, ...fields })
    const ioFailed = (cause: unknown) =>
      new StoreIoError({ operation: "write", image: about.image, path: destination, cause })
    const fd = yield* Effect.acquireRelease(
      Effect.try({
        try: () => nodeFs.openSync(destination, "wx+", 0o600),
        catch: ioFailed,
      }),
      (fd) => Effect.sync(() => nodeFs.closeSync(fd)),
    )
    // Killed with this process, however it dies: a tool left behind would go on writing.
    const { child, outcome } = yield* startTool(
      diesWithParent(["prlimit", `--fsize=${limit}`, "--", ...FILE_TOOLS[compression]]),
      fd,
    ).pipe(Effect.mapError((cause) => failed({ cause })))
    // The tool's exit says why it stopped reading, if it did: the feed just ends there.
    yield* Stream.runForEach(
      Stream.takeWhile(
        Stream.mapEffect(self, (chunk) => writeChunk(child, chunk.slice())),
        (open) => open,
      ),
      () => Effect.void,
    )
    yield* Effect.sync(() => child.stdin?.end())
    const { code, signal, stderr } = yield* Effect.promise(() => outcome)
    if (signal === FILE_TOO_LARGE) return yield* tooLarge(limit)
    if (code !== 0) {
      return yield* failed({
        detail: lastLines(stderr, 3).join("; ") || `${compression} exited with status ${code}`,
      })
    }
    const size = yield* Effect.try({ try: () => nodeFs.fstatSync(fd).size, catch: ioFailed })
    // A qcow2 says how large it is: it may not be larger than that (plus its metadata).
    const head = new Uint8Array(512)
    const read = yield* Effect.try({
      try: () => nodeFs.readSync(fd, head, 0, head.length, 0),
      catch: ioFailed,
    })
    const declared = qcow2FileLimit(head.subarray(0, read))
    if (declared !== undefined && size > declared) return yield* tooLarge(declared)
    return size
  }))
