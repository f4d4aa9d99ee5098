/**
 * Connections to the unix sockets QEMU serves (the agent's port, the INSPECT console, QMP), as
 * web byte streams. Deno's own socket, because @effect/platform's Socket hands each chunk to a
 * new fiber: no back-pressure and no guaranteed order, which the agent protocol relies on.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"

/** A duplex byte channel: a unix socket, or `{ readable: child.stdout, writable: child.stdin }`. */
export interface ByteChannel {
  readonly readable: ReadableStream<Uint8Array>
  readonly writable: WritableStream<Uint8Array>
}

export class SocketUnavailable extends Data.TaggedError("SocketUnavailable")<{
  readonly path: string
  readonly cause: unknown
}> {
  override get message() {
    return `cannot connect to ${this.path} (${String(this.cause)})`
  }
}

const closeQuietly = (conn: Deno.Conn) => {
  try {
    conn.close()
  } catch {
    // Already closed, by us or by QEMU.
  }
}

/**
 * Connect to the unix socket at `path`, retrying every 20 ms for a while when QEMU has not
 * created it yet. Closing the scope closes the connection.
 */
export const connectUnix = (
  path: string,
  options: { readonly attempts: number } = { attempts: 250 },
): Effect.Effect<ByteChannel, SocketUnavailable, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => Deno.connect({ transport: "unix", path }),
      catch: (cause) => new SocketUnavailable({ path, cause }),
    }),
    (conn) => Effect.sync(() => closeQuietly(conn)),
  ).pipe(Effect.retry({ times: options.attempts, schedule: Schedule.spaced("20 millis") }))
