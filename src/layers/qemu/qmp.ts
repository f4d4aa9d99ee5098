/**
 * A QMP client: QEMU's JSON control protocol over its unix socket. Commands run one at a time;
 * asynchronous events (STOP, BLOCK_IO_ERROR, ...) are kept in a bounded queue.
 */
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { succeedsWithin } from "../deadline.ts"
import { connectUnix } from "./unix_socket.ts"

export class QmpError extends Data.TaggedError("QmpError")<{
  readonly command: string
  readonly reason: string
}> {
  override get message() {
    return `QMP ${this.command}: ${this.reason}`
  }
}

export interface QmpEvent {
  readonly event: string
  readonly data?: Record<string, unknown>
}

export interface QmpClient {
  /** Run one command; its `return` value, or a QmpError with QEMU's `error.desc`. */
  readonly execute: (
    command: string,
    args?: Record<string, unknown>,
  ) => Effect.Effect<unknown, QmpError>
  /** Events as QEMU sent them, oldest first (the oldest are dropped beyond 64). */
  readonly events: Queue.Dequeue<QmpEvent>
}

type Message = Record<string, unknown>

const encoder = new TextEncoder()

/** Connect to QMP at `path`, negotiate capabilities; closing the scope disconnects. */
export const connectQmp = (path: string): Effect.Effect<QmpClient, QmpError, Scope.Scope> =>
  Effect.gen(function* () {
    const channel = yield* connectUnix(path, { attempts: 50 }).pipe(
      Effect.mapError((error) => new QmpError({ command: "connect", reason: error.message })),
    )
    const writer = channel.writable.getWriter()
    const events = yield* Queue.sliding<QmpEvent>(64)
    const greeting = yield* Deferred.make<void, QmpError>()
    let pending: Deferred.Deferred<Message, QmpError> | undefined
    const closed = (reason: string) => new QmpError({ command: "read", reason })

    const dispatch = (message: Message) =>
      Effect.gen(function* () {
        if ("QMP" in message) return yield* Deferred.succeed(greeting, undefined)
        if (typeof message.event === "string") {
          const data = message.data as Record<string, unknown> | undefined
          return yield* Queue.offer(events, { event: message.event, ...(data ? { data } : {}) })
        }
        if (("return" in message || "error" in message) && pending !== undefined) {
          const answer = pending
          pending = undefined
          yield* Deferred.succeed(answer, message)
        }
      })

    yield* Stream.fromReadableStream({
      evaluate: () => channel.readable,
      onError: (error) => closed(String(error)),
      releaseLockOnEnd: true,
    }).pipe(
      Stream.decodeText(),
      Stream.splitLines,
      Stream.filter((line) => line.trim() !== ""),
      Stream.mapEffect((line) =>
        Effect.try({
          try: () => JSON.parse(line) as Message,
          catch: () => closed(`QEMU sent a line that is not JSON: ${line.slice(0, 80)}`),
        })
      ),
      Stream.runForEach(dispatch),
      Effect.zipRight(Effect.fail(closed("QEMU closed the connection"))),
      Effect.catchAll((error) =>
        Effect.zipRight(
          Deferred.fail(greeting, error),
          Effect.suspend(() => pending === undefined ? Effect.void : Deferred.fail(pending, error)),
        )
      ),
      Effect.forkScoped,
    )
    yield* Effect.addFinalizer(() => Effect.promise(() => writer.abort().catch(() => {})))

    const lock = yield* Effect.makeSemaphore(1)
    const send = (command: string, args?: Record<string, unknown>) =>
      Effect.gen(function* () {
        const answer = yield* Deferred.make<Message, QmpError>()
        pending = answer
        const line = JSON.stringify(
          args === undefined ? { execute: command } : {
            execute: command,
            arguments: args,
          },
        )
        yield* Effect.tryPromise({
          try: () => writer.write(encoder.encode(`${line}\n`)),
          catch: (error) => new QmpError({ command, reason: `cannot write (${String(error)})` }),
        })
        const message = yield* Deferred.await(answer)
        if ("error" in message) {
          const error = message.error as { desc?: unknown } | undefined
          return yield* new QmpError({ command, reason: String(error?.desc ?? "failed") })
        }
        return message.return
      }).pipe(lock.withPermits(1))

    yield* Deferred.await(greeting)
    yield* send("qmp_capabilities")
    return { execute: send, events }
  })

/**
 * Ask QEMU to quit over QMP (it closes its disk images cleanly, unlike a kill); whether it
 * accepted within `timeout`. Safe inside a finalizer: the deadline holds there too.
 */
export const qmpQuit = (path: string, timeout: Duration.DurationInput): Effect.Effect<boolean> =>
  Effect.scoped(
    Effect.flatMap(connectQmp(path), (qmp) =>
      qmp.execute("quit").pipe(
        // QEMU may close the socket before its answer arrives: it is quitting either way.
        Effect.catchTag("QmpError", (error) =>
          error.command === "read" ? Effect.void : Effect.fail(error)),
      )),
  ).pipe((quit) => succeedsWithin(quit, timeout))
