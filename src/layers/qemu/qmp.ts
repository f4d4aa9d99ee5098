/**
 * Just enough of QMP, QEMU's JSON control protocol, to stop a VM whose guest no longer answers:
 * negotiate capabilities, then `quit` (QEMU closes its disk images cleanly, unlike a kill).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

const encoder = new TextEncoder()

/** Read newline-separated JSON objects until one satisfies `done`. */
const readUntil = async (
  reader: ReadableStreamDefaultReader<Uint8Array>,
  state: { buffer: string },
  done: (message: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>> => {
  const decoder = new TextDecoder()
  for (;;) {
    let newline = state.buffer.indexOf("\n")
    while (newline >= 0) {
      const line = state.buffer.slice(0, newline).trim()
      state.buffer = state.buffer.slice(newline + 1)
      if (line !== "") {
        const message = JSON.parse(line) as Record<string, unknown>
        if (done(message)) return message
      }
      newline = state.buffer.indexOf("\n")
    }
    const next = await reader.read()
    if (next.done) throw new Error("QMP closed the connection")
    state.buffer += decoder.decode(next.value, { stream: true })
  }
}

const isReturn = (message: Record<string, unknown>) => "return" in message || "error" in message

/** Send `quit` over the QMP socket at `path`; whether QEMU accepted it within `timeout`. */
export const qmpQuit = (path: string, timeout: Duration.DurationInput): Effect.Effect<boolean> =>
  Effect.tryPromise(async (signal) => {
    const conn = await Deno.connect({ transport: "unix", path })
    signal.addEventListener("abort", () => conn.close(), { once: true })
    const reader = conn.readable.getReader()
    const writer = conn.writable.getWriter()
    const state = { buffer: "" }
    try {
      await readUntil(reader, state, (message) => "QMP" in message)
      await writer.write(encoder.encode(JSON.stringify({ execute: "qmp_capabilities" }) + "\n"))
      await readUntil(reader, state, isReturn)
      await writer.write(encoder.encode(JSON.stringify({ execute: "quit" }) + "\n"))
      const answer = await readUntil(reader, state, isReturn).catch(() => ({ return: {} }))
      return "return" in answer
    } finally {
      try {
        conn.close()
      } catch {
        // Closed by the abort or by QEMU on its way out.
      }
    }
  }).pipe(
    Effect.timeout(Duration.decode(timeout)),
    Effect.orElseSucceed(() => false),
  )
