/**
 * The byte framing of the guest-agent channel, shared by the host and the guest agent. This file
 * imports nothing: the agent runs it in the helper VM with no packages at hand.
 *
 * A frame is a 4-byte big-endian payload length followed by the payload. The first payload byte
 * says what follows:
 *
 * - `KIND_JSON` (1): a UTF-8 JSON message (see src/domain/guest/protocol.ts);
 * - `KIND_DATA` (2): a chunk of a command's stdin/stdout/stderr, kept binary so output is not
 *   inflated by base64: stream byte, 4-byte big-endian exec id, then the bytes.
 *
 * Payloads are at most `MAX_FRAME_BYTES`; a longer announced length is refused before anything
 * is buffered, so a misbehaving peer cannot make the reader grow without bound.
 */

/** Bumped whenever a message or the framing changes incompatibly. */
export const PROTOCOL_VERSION = 1

export const MAX_FRAME_BYTES = 1024 * 1024

export const KIND_JSON = 1
export const KIND_DATA = 2

const HEADER_BYTES = 4
const DATA_HEADER_BYTES = 6

/** The most data bytes one data frame carries; longer output is split. */
export const MAX_CHUNK_BYTES = MAX_FRAME_BYTES - DATA_HEADER_BYTES

export type StreamName = "stdin" | "stdout" | "stderr"

const streamIds: Record<StreamName, number> = { stdin: 0, stdout: 1, stderr: 2 }
const streamNames: ReadonlyArray<StreamName> = ["stdin", "stdout", "stderr"]

/** A frame's payload, as read from the wire. */
export type Payload =
  | { readonly kind: "json"; readonly text: string }
  | {
    readonly kind: "data"
    readonly stream: StreamName
    readonly id: number
    readonly data: Uint8Array
  }
  | { readonly kind: "invalid"; readonly reason: string }

const encoder = new TextEncoder()
const strictDecoder = new TextDecoder("utf-8", { fatal: true })

const frameOf = (payloadLength: number): { frame: Uint8Array; view: DataView } => {
  if (payloadLength > MAX_FRAME_BYTES) {
    throw new RangeError(`A frame of ${payloadLength} bytes exceeds the ${MAX_FRAME_BYTES} limit`)
  }
  const frame = new Uint8Array(HEADER_BYTES + payloadLength)
  const view = new DataView(frame.buffer)
  view.setUint32(0, payloadLength)
  return { frame, view }
}

/** Frame a JSON message; throws a RangeError when it does not fit in one frame. */
export const encodeJsonFrame = (message: unknown): Uint8Array => {
  const text = encoder.encode(JSON.stringify(message))
  const { frame } = frameOf(1 + text.length)
  frame[HEADER_BYTES] = KIND_JSON
  frame.set(text, HEADER_BYTES + 1)
  return frame
}

/**
 * Frame a chunk of a stream of exec `id`; throws a RangeError when `data` exceeds
 * `MAX_CHUNK_BYTES` (split it with `chunks`). An empty stdin chunk means end of input.
 */
export const encodeDataFrame = (stream: StreamName, id: number, data: Uint8Array): Uint8Array => {
  const { frame, view } = frameOf(DATA_HEADER_BYTES + data.length)
  frame[HEADER_BYTES] = KIND_DATA
  frame[HEADER_BYTES + 1] = streamIds[stream]
  view.setUint32(HEADER_BYTES + 2, id)
  frame.set(data, HEADER_BYTES + DATA_HEADER_BYTES)
  return frame
}

/** `data` cut into pieces that each fit in one data frame (no copy). */
export const chunks = (data: Uint8Array, size = MAX_CHUNK_BYTES): Array<Uint8Array> => {
  const pieces: Array<Uint8Array> = []
  for (let start = 0; start < data.length; start += size) {
    pieces.push(data.subarray(start, Math.min(start + size, data.length)))
  }
  return pieces
}

/**
 * Interpret one payload. Never throws: anything malformed becomes `invalid`, with a reason that
 * reads after "the peer sent".
 */
export const decodePayload = (payload: Uint8Array): Payload => {
  if (payload.length === 0) return { kind: "invalid", reason: "an empty frame" }
  const kind = payload[0]
  if (kind === KIND_JSON) {
    try {
      return { kind: "json", text: strictDecoder.decode(payload.subarray(1)) }
    } catch {
      return { kind: "invalid", reason: "a message that is not valid UTF-8" }
    }
  }
  if (kind === KIND_DATA) {
    if (payload.length < DATA_HEADER_BYTES) {
      return { kind: "invalid", reason: "a data frame shorter than its header" }
    }
    const stream = streamNames[payload[1]!]
    if (stream === undefined) {
      return { kind: "invalid", reason: `a data frame for unknown stream ${payload[1]}` }
    }
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength)
    return {
      kind: "data",
      stream,
      id: view.getUint32(2),
      data: payload.subarray(DATA_HEADER_BYTES),
    }
  }
  return { kind: "invalid", reason: `a frame of unknown kind ${kind}` }
}

/** What `FrameDecoder.push` found: the complete payloads, and an error once the stream is bad. */
export interface DecodeResult {
  readonly frames: Array<Uint8Array>
  /** Set when a frame announced more than `MAX_FRAME_BYTES`; the decoder stays failed. */
  readonly oversize?: number
}

/**
 * Incremental decoder: feed it chunks as they arrive, cut anywhere, and it returns the complete
 * payloads. It holds at most one header and one payload of at most `MAX_FRAME_BYTES`.
 */
export class FrameDecoder {
  readonly #header = new Uint8Array(HEADER_BYTES)
  #headerFilled = 0
  #payload: Uint8Array | undefined
  #payloadFilled = 0
  #oversize: number | undefined

  /** Bytes of an incomplete frame held so far (for tests and diagnostics). */
  get buffered(): number {
    return this.#headerFilled + this.#payloadFilled
  }

  push(chunk: Uint8Array): DecodeResult {
    const frames: Array<Uint8Array> = []
    let offset = 0
    while (this.#oversize === undefined && offset < chunk.length) {
      if (this.#payload === undefined) {
        const take = Math.min(HEADER_BYTES - this.#headerFilled, chunk.length - offset)
        this.#header.set(chunk.subarray(offset, offset + take), this.#headerFilled)
        this.#headerFilled += take
        offset += take
        if (this.#headerFilled < HEADER_BYTES) break
        const length = new DataView(this.#header.buffer).getUint32(0)
        this.#headerFilled = 0
        if (length > MAX_FRAME_BYTES) {
          this.#oversize = length
          break
        }
        this.#payload = new Uint8Array(length)
        this.#payloadFilled = 0
      }
      const payload = this.#payload
      const take = Math.min(payload.length - this.#payloadFilled, chunk.length - offset)
      payload.set(chunk.subarray(offset, offset + take), this.#payloadFilled)
      this.#payloadFilled += take
      offset += take
      if (this.#payloadFilled === payload.length) {
        frames.push(payload)
        this.#payload = undefined
        this.#payloadFilled = 0
      }
    }
    return this.#oversize === undefined ? { frames } : { frames, oversize: this.#oversize }
  }

  /** Forget a partial frame (the peer went away and will start afresh). */
  reset(): void {
    this.#headerFilled = 0
    this.#payload = undefined
    this.#payloadFilled = 0
    this.#oversize = undefined
  }
}
