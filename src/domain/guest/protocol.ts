/**
 * The guest-agent protocol: the messages the host and the agent in the helper VM exchange over
 * the framed channel of src/domain/guest/frame.ts. The host validates every message from the guest
 * with these schemas; the agent (guest/agent.ts) cannot load effect and checks the few fields it
 * needs by hand.
 *
 * Guest -> host: `hello` once at start, `stdout`/`stderr` chunks (binary data frames), `exit`
 * when a command ends, `error` for a request it cannot serve, `goodbye` after `shutdown` synced.
 * Host -> guest: `exec`, `stdin` chunks (an empty one closes stdin), `signal`, `shutdown`, and
 * `hello`, which the agent answers with its own (to a host that restored the VM's state).
 *
 * Conventions: a command that does not exist exits 127 (126 when it cannot be executed) with the
 * reason on its stderr, as a shell reports it; a command killed by signal N exits 128+N. An
 * `error` with an id means the exec request itself was refused (bad cwd, duplicate id); one
 * without an id means the agent could not understand the host.
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import {
  decodePayload,
  encodeDataFrame,
  encodeJsonFrame,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
} from "./frame.ts"

export { MAX_FRAME_BYTES, PROTOCOL_VERSION }

/** Exec ids are 32-bit unsigned, as the data frames carry them. */
export const ExecId = Schema.Int.pipe(Schema.between(0, 0xffff_ffff))

// Guest -> host

export const Hello = Schema.TaggedStruct("hello", {
  version: Schema.Int,
  /** The agent's runtime, e.g. `deno 2.1.4`, for logs. */
  agent: Schema.optional(Schema.String),
  pid: Schema.optional(Schema.Int),
})
export type Hello = typeof Hello.Type

export const Stdout = Schema.TaggedStruct("stdout", { id: ExecId, data: Schema.Uint8ArrayFromSelf })
export const Stderr = Schema.TaggedStruct("stderr", { id: ExecId, data: Schema.Uint8ArrayFromSelf })

export const Exit = Schema.TaggedStruct("exit", {
  id: ExecId,
  code: Schema.Int.pipe(Schema.between(0, 255)),
})

export const ErrorMessage = Schema.TaggedStruct("error", {
  id: Schema.optional(ExecId),
  message: Schema.String,
})

export const Goodbye = Schema.TaggedStruct("goodbye", {})

export const GuestMessage = Schema.Union(Hello, Stdout, Stderr, Exit, ErrorMessage, Goodbye)
  .annotations({ identifier: "GuestMessage" })
export type GuestMessage = typeof GuestMessage.Type

// Host -> guest

export const Exec = Schema.TaggedStruct("exec", {
  id: ExecId,
  argv: Schema.NonEmptyArray(Schema.String),
  /** Added to the agent's environment. */
  env: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  cwd: Schema.optional(Schema.String),
  /** When true the host streams `stdin` chunks; otherwise stdin is /dev/null. */
  stdin: Schema.optional(Schema.Boolean),
})

export const Stdin = Schema.TaggedStruct("stdin", { id: ExecId, data: Schema.Uint8ArrayFromSelf })

export const Signal = Schema.TaggedStruct("signal", {
  id: ExecId,
  signal: Schema.Literal("SIGTERM", "SIGKILL", "SIGINT"),
})

/** Sync every filesystem, answer `goodbye`, then power the VM off. */
export const Shutdown = Schema.TaggedStruct("shutdown", {})

/**
 * Say hello again: the agent of a VM restored from a saved state said its hello to the host
 * that saved it.
 */
export const HelloAgain = Schema.TaggedStruct("hello", {})

export const HostMessage = Schema.Union(Exec, Stdin, Signal, Shutdown, HelloAgain)
  .annotations({ identifier: "HostMessage" })
export type HostMessage = typeof HostMessage.Type

const decodeGuestMessage = Schema.decodeUnknownEither(GuestMessage)

/**
 * Decode one frame payload from the guest. Left says what was wrong as a noun phrase that reads
 * after "the agent sent", e.g. `a message that is not valid JSON`.
 */
export const decodeGuestPayload = (payload: Uint8Array): Either.Either<GuestMessage, string> => {
  const decoded = decodePayload(payload)
  switch (decoded.kind) {
    case "invalid":
      return Either.left(decoded.reason)
    case "data":
      if (decoded.stream === "stdin") return Either.left("a stdin chunk")
      return decodeGuestMessage({ _tag: decoded.stream, id: decoded.id, data: decoded.data }).pipe(
        Either.mapLeft(describe),
      )
    case "json": {
      let value: unknown
      try {
        value = JSON.parse(decoded.text)
      } catch {
        return Either.left("a message that is not valid JSON")
      }
      return decodeGuestMessage(value).pipe(Either.mapLeft(describe))
    }
  }
}

/** The first issue only: enough to act on, short enough for one line. */
const describe = (error: ParseResult.ParseError): string => {
  const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
  if (issue === undefined) return "an invalid message"
  const where = issue.path.length > 0 ? ` (at ${issue.path.join(".")})` : ""
  return `an invalid message${where}: ${issue.message}`
}

/** The frames of one host message (stdin chunks are binary data frames). */
export const encodeHostMessage = (message: HostMessage): Uint8Array =>
  message._tag === "stdin"
    ? encodeDataFrame("stdin", message.id, message.data)
    : encodeJsonFrame(message)

/** Does a hello's version match ours? Left is the sentence to show. */
export const checkVersion = (hello: Hello): Either.Either<Hello, string> =>
  hello.version === PROTOCOL_VERSION ? Either.right(hello) : Either.left(
    `the guest agent speaks protocol version ${hello.version}, this transient speaks ` +
      `${PROTOCOL_VERSION} (rebuild the guest artifacts with \`deno task guest\`)`,
  )
