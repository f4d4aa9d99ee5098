/**
 * Terminal on this process's standard input and output. Deno's own API, since the platform has
 * no raw mode.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { Terminal } from "../services/terminal.ts"

const size = Effect.sync(() => {
  try {
    const { columns, rows } = Deno.consoleSize()
    return columns > 0 && rows > 0 ? { columns, rows } : { columns: 80, rows: 24 }
  } catch {
    return { columns: 80, rows: 24 }
  }
})

const setRaw = (raw: boolean) =>
  Effect.sync(() => {
    try {
      Deno.stdin.setRaw(raw)
    } catch {
      // Not a terminal after all: nothing to restore.
    }
  })

// A read of stdin cannot be cancelled: when the stream is interrupted the pending read is left
// behind (and the chunk it gets is lost), but stdin itself stays open for what comes after.
const input = Stream.repeatEffectOption(
  Effect.promise(async () => {
    const buffer = new Uint8Array(4096)
    const n = await Deno.stdin.read(buffer)
    return n === null ? undefined : buffer.slice(0, n)
  }).pipe(
    Effect.flatMap((chunk) =>
      chunk === undefined ? Effect.fail(Option.none()) : Effect.succeed(chunk)
    ),
  ),
)

const write = (bytes: Uint8Array) =>
  Effect.promise(async () => {
    for (let offset = 0; offset < bytes.length;) {
      offset += await Deno.stdout.write(bytes.subarray(offset))
    }
  })

export const TerminalDeno: Layer.Layer<Terminal> = Layer.sync(Terminal, () => ({
  interactive: Deno.stdin.isTerminal() && Deno.stdout.isTerminal(),
  size,
  raw: Effect.acquireRelease(setRaw(true), () => setRaw(false)),
  input,
  write,
}))
