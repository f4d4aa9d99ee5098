/**
 * Terminal: the user's terminal, for what needs one (INSPECT's shell, `transient run`'s
 * console): whether there is one, its size, raw mode, and its bytes in and out.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"

export interface TerminalShape {
  /** Whether standard input and output are both a terminal. */
  readonly interactive: boolean
  /** Its size; 80x24 when it reports none. */
  readonly size: Effect.Effect<{ readonly columns: number; readonly rows: number }>
  /** Raw mode (no echo, no line editing, no signals from keys) until the scope closes. */
  readonly raw: Effect.Effect<void, never, Scope.Scope>
  /** What the user types, chunk by chunk. Ending the stream leaves standard input open. */
  readonly input: Stream.Stream<Uint8Array>
  /** Write to standard output, whole. */
  readonly write: (bytes: Uint8Array) => Effect.Effect<void>
}

export class Terminal extends Context.Tag("transient/Terminal")<Terminal, TerminalShape>() {}
