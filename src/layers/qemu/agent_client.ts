/**
 * AgentClient: the host end of the guest-agent channel (src/domain/guest/protocol.ts). It owns a duplex
 * byte channel — the QEMU `chardev socket` of the agent's virtio-serial port, or a child
 * process's pipes in tests — and turns it into typed operations.
 *
 * Everything the guest sends is decoded and validated; garbage, an oversize frame, or the
 * channel closing fails every pending operation with a VmError, and so do later calls: a
 * misbehaving guest can neither crash nor hang the host.
 */
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import {
  AgentChannelBroken,
  GuestCommandFailed,
  VmBootFailed,
  type VmError,
} from "../../domain/errors/vm.ts"
import { chunks, FrameDecoder, MAX_FRAME_BYTES } from "../../domain/guest/frame.ts"
import {
  checkVersion,
  decodeGuestPayload,
  encodeHostMessage,
  type GuestMessage,
  type Hello,
  type HostMessage,
} from "../../domain/guest/protocol.ts"
import type { OutputStream } from "../../services/reporter.ts"
import { atMost } from "../deadline.ts"
import type { ByteChannel } from "./unix_socket.ts"

/** The agent's channel: QEMU's unix socket for its port, or a child process's pipes in tests. */
export type AgentChannel = ByteChannel

export interface ExecRequest {
  readonly argv: readonly [string, ...Array<string>]
  /** Added to the agent's environment. */
  readonly env?: Readonly<Record<string, string>>
  readonly cwd?: string
  /** Streamed to the command's stdin, then closed; without it stdin is /dev/null. */
  readonly stdin?: Stream.Stream<Uint8Array, VmError>
  /** Called with each chunk of output, in order; the guest waits while it runs. */
  readonly onOutput?: (stream: OutputStream, chunk: Uint8Array) => Effect.Effect<void>
}

export interface AgentClient {
  /** What the agent announced when it started. */
  readonly hello: Hello
  /**
   * Run a command in the guest and return its exit status (127: not found, 128+N: killed by
   * signal N). Interrupting it kills the command in the guest and waits briefly for its end.
   */
  readonly exec: (request: ExecRequest) => Effect.Effect<number, VmError>
  /** Sync the guest's filesystems; the guest then powers off (or exits, outside a VM). */
  readonly shutdown: Effect.Effect<void, VmError>
}

export interface ConnectOptions {
  /** How long to wait for the agent's hello (the boot time, for a VM). */
  readonly helloTimeout: Duration.DurationInput
  /** How long an interrupted exec waits for the guest to confirm the kill. */
  readonly killTimeout?: Duration.DurationInput
  /** Ask for the hello first: the agent of a restored VM said its own long ago. */
  readonly greet?: boolean
}

interface PendingExec {
  readonly onOutput: ExecRequest["onOutput"]
  readonly exit: Deferred.Deferred<number, VmError>
}

const channelError = (reason: string) =>
  new AgentChannelBroken({ operation: "talk to its agent", reason })

/** The channel's reader and writer, released (and the channel closed) when the scope closes. */
const takeChannel = (channel: AgentChannel) =>
  Effect.gen(function* () {
    const reader = channel.readable.getReader()
    const writer = channel.writable.getWriter()
    // A broken pipe also rejects these; the failure is reported through read and write instead.
    reader.closed.catch(() => {})
    writer.closed.catch(() => {})
    yield* Effect.addFinalizer(() =>
      Effect.promise(() =>
        Promise.allSettled([reader.cancel(), writer.abort()]).then(() => {
          reader.releaseLock()
          writer.releaseLock()
        })
      )
    )
    return { reader, writer }
  })

/** The agent's hello, within `timeout`, from a version this host speaks. */
const awaitHello = (hello: Deferred.Deferred<Hello, VmError>, timeout: Duration.DurationInput) =>
  Deferred.await(hello).pipe(
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () =>
        new VmBootFailed({
          operation: "start its agent",
          reason: "the agent did not say hello in time",
        }),
    }),
    Effect.flatMap((message) =>
      Either.match(checkVersion(message), {
        onLeft: (reason) => Effect.fail(new VmBootFailed({ operation: "start its agent", reason })),
        onRight: Effect.succeed,
      })
    ),
  )

/** Send `stdin` to exec `id` in frames, then its end (an empty chunk). */
const feedStdin = (
  send: (message: HostMessage) => Effect.Effect<void, VmError>,
  id: number,
  stdin: Stream.Stream<Uint8Array, VmError>,
) =>
  stdin.pipe(
    Stream.runForEach((chunk) =>
      Effect.forEach(chunks(chunk), (data) => send({ _tag: "stdin", id, data }), {
        discard: true,
      })
    ),
    Effect.zipRight(send({ _tag: "stdin", id, data: new Uint8Array(0) })),
  )

// Long: the read loop, send and exec share the channel's state (pending execs, whether it broke).
/**
 * Take over `channel` and wait for the agent's hello. Closing the scope stops reading and closes
 * the channel.
 */
export const connectAgent = Effect.fn("AgentClient.connect")(function* (
  channel: AgentChannel,
  options: ConnectOptions,
): Effect.fn.Return<AgentClient, VmError, Scope.Scope> {
  const { reader, writer } = yield* takeChannel(channel)

  const hello = yield* Deferred.make<Hello, VmError>()
  const goodbye = yield* Deferred.make<void, VmError>()
  const pending = new Map<number, PendingExec>()
  let broken: VmError | undefined
  let nextId = 1

  /** The channel is unusable from now on: fail everything that waits on it. */
  const breakWith = (error: VmError) =>
    Effect.gen(function* () {
      if (broken !== undefined) return
      broken = error
      yield* Deferred.fail(hello, error)
      yield* Deferred.fail(goodbye, error)
      for (const exec of pending.values()) yield* Deferred.fail(exec.exit, error)
      pending.clear()
    })

  const dispatch = (message: GuestMessage): Effect.Effect<void> => {
    switch (message._tag) {
      case "hello":
        return Deferred.succeed(hello, message)
      case "stdout":
      case "stderr": {
        // Output of an exec given up on (interrupted) is dropped.
        const onOutput = pending.get(message.id)?.onOutput
        return onOutput === undefined ? Effect.void : onOutput(message._tag, message.data)
      }
      case "exit": {
        const exec = pending.get(message.id)
        pending.delete(message.id)
        return exec === undefined ? Effect.void : Deferred.succeed(exec.exit, message.code)
      }
      case "error": {
        if (message.id === undefined) {
          return breakWith(channelError(`the agent reported: ${message.message}`))
        }
        const exec = pending.get(message.id)
        pending.delete(message.id)
        return exec === undefined ? Effect.void : Deferred.fail(
          exec.exit,
          new GuestCommandFailed({ operation: "run a command", reason: message.message }),
        )
      }
      case "goodbye":
        return Deferred.succeed(goodbye, undefined)
    }
  }

  const decoder = new FrameDecoder()
  const readLoop = Effect.gen(function* () {
    while (broken === undefined) {
      const next = yield* Effect.tryPromise({
        try: () => reader.read(),
        catch: (error) => channelError(`reading failed (${String(error)})`),
      })
      if (next.done) return yield* breakWith(channelError("the channel closed"))
      const { frames, oversize } = decoder.push(next.value)
      for (const frame of frames) {
        const message = decodeGuestPayload(frame)
        if (Either.isLeft(message)) {
          return yield* breakWith(channelError(`the agent sent ${message.left}`))
        }
        yield* dispatch(message.right)
      }
      if (oversize !== undefined) {
        return yield* breakWith(channelError(
          `the agent announced a frame of ${oversize} bytes (the limit is ${MAX_FRAME_BYTES})`,
        ))
      }
    }
  }).pipe(
    Effect.catchAll(breakWith),
    Effect.catchAllDefect((defect) =>
      breakWith(channelError(`handling its output failed (${String(defect)})`))
    ),
  )
  yield* Effect.forkScoped(readLoop)

  const send = (message: HostMessage): Effect.Effect<void, VmError> =>
    Effect.suspend(() => {
      if (broken !== undefined) return Effect.fail(broken)
      const frame = Effect.try({
        try: () => encodeHostMessage(message),
        catch: () => channelError(`a ${message._tag} message does not fit in one frame`),
      })
      return Effect.flatMap(frame, (bytes) =>
        Effect.tryPromise({
          try: () => writer.write(bytes),
          // A broken pipe is the guest's end gone: the same event as reading the end of it.
          catch: (error) =>
            channelError(
              error instanceof Deno.errors.BrokenPipe
                ? "the channel closed"
                : `writing failed (${String(error)})`,
            ),
        })).pipe(Effect.tapError(breakWith))
    })

  if (options.greet === true) yield* send({ _tag: "hello" })
  const agentHello = yield* awaitHello(hello, options.helloTimeout)

  const killTimeout = options.killTimeout ?? "2 seconds"

  const exec = Effect.fn("AgentClient.exec")(function* (request: ExecRequest) {
    if (broken !== undefined) return yield* broken
    const id = nextId++
    const exit = yield* Deferred.make<number, VmError>()
    pending.set(id, { onOutput: request.onOutput, exit })
    return yield* Effect.gen(function* () {
      yield* send({
        _tag: "exec",
        id,
        argv: request.argv,
        ...(request.env === undefined ? {} : { env: request.env }),
        ...(request.cwd === undefined ? {} : { cwd: request.cwd }),
        ...(request.stdin === undefined ? {} : { stdin: true }),
      })
      if (request.stdin !== undefined) {
        // A failing input fails the exec and kills the command.
        yield* feedStdin(send, id, request.stdin).pipe(
          Effect.catchAll((error) =>
            Deferred.fail(exit, error).pipe(
              Effect.zipRight(send({ _tag: "signal", id, signal: "SIGKILL" })),
              Effect.ignore,
            )
          ),
          Effect.forkScoped,
        )
      }
      return yield* Deferred.await(exit)
    }).pipe(
      Effect.scoped,
      // Runs uninterruptibly: the deadline must be one that holds there.
      Effect.onInterrupt(() =>
        atMost(
          send({ _tag: "signal", id, signal: "SIGKILL" }).pipe(
            Effect.zipRight(Deferred.await(exit)),
          ),
          killTimeout,
        )
      ),
      Effect.ensuring(Effect.sync(() => pending.delete(id))),
    )
  })

  const shutdown = Effect.gen(function* () {
    yield* send({ _tag: "shutdown" })
    yield* Deferred.await(goodbye)
  }).pipe(Effect.withSpan("AgentClient.shutdown"))

  return { hello: agentHello, exec, shutdown }
})
