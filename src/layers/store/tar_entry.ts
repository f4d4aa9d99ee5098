/**
 * One file out of a tar archive (a Vagrant box's `box.img`, a containerDisk's `disk/*`), as a
 * Stream transform that never holds the archive. Reads ustar, GNU (long names, base-256 sizes)
 * and pax (path, size) headers.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import {
  headerNumber,
  headerPath,
  headerText,
  paddedSize,
  TAR_BLOCK,
} from "../../domain/tar_header.ts"

const BLOCK = TAR_BLOCK

/**
 * Why the archive does not yield the entry: it has none that fits, it ends too soon, it has a
 * record too large to read, or (when the entry must be unique) it has two that fit.
 */
export type TarProblem = "Missing" | "Truncated" | "Oversized" | "Several"

/** The longest long-name or pax record read: real ones are a few hundred bytes. */
const MAX_RECORD_BYTES = 1024 * 1024

const decoder = new TextDecoder()

/** pax records: `LEN key=value\n`... */
export const paxRecords = (data: Uint8Array): Map<string, string> => {
  const records = new Map<string, string>()
  for (const line of decoder.decode(data).split("\n")) {
    const match = /^\d+ ([^=]+)=(.*)$/s.exec(line)
    if (match) records.set(match[1] ?? "", match[2] ?? "")
  }
  return records
}

type State =
  /** Collecting `into` (a header, or a long name or pax record of `size` bytes). */
  | { readonly _tag: "Collect"; readonly into: Uint8Array; filled: number; readonly meta?: Meta }
  | { readonly _tag: "Skip"; left: number }
  /** The entry's bytes; then `padding` to the next block. */
  | { readonly _tag: "Entry"; left: number; readonly padding: number }
  /** After the entry: read the rest, so that a checksum computed on the way in covers it all. */
  | { readonly _tag: "Drain" }

interface Meta {
  readonly type: "L" | "x"
  readonly size: number
}

/**
 * A push parser: fed the archive chunk by chunk, it returns the parts of the wanted entry's
 * contents each chunk holds.
 */
class TarEntryReader {
  #state: State = TarEntryReader.header()
  #longName: string | undefined
  #pax = new Map<string, string>()
  /** Whether the wanted entry was read already. */
  #found = false

  constructor(
    private readonly wanted: (path: string) => boolean,
    /** Read the headers after the entry too, and fail with "Several" on a second one. */
    private readonly unique: boolean,
  ) {}

  static header(): State {
    return { _tag: "Collect", into: new Uint8Array(BLOCK), filled: 0 }
  }

  push(chunk: Uint8Array): Either.Either<ReadonlyArray<Uint8Array>, TarProblem> {
    const out: Array<Uint8Array> = []
    let offset = 0
    while (offset < chunk.length) {
      const state = this.#state
      const available = chunk.length - offset
      switch (state._tag) {
        case "Drain":
          return Either.right(out)
        case "Entry": {
          const take = Math.min(state.left, available)
          out.push(chunk.subarray(offset, offset + take))
          offset += take
          state.left -= take
          if (state.left === 0) this.#state = this.#afterEntry(state.padding)
          break
        }
        case "Skip": {
          const take = Math.min(state.left, available)
          offset += take
          state.left -= take
          if (state.left === 0) this.#state = TarEntryReader.header()
          break
        }
        case "Collect": {
          const take = Math.min(state.into.length - state.filled, available)
          state.into.set(chunk.subarray(offset, offset + take), state.filled)
          offset += take
          state.filled += take
          if (state.filled === state.into.length) {
            const problem = state.meta
              ? this.#record(state.meta, state.into)
              : this.#header(state.into)
            if (problem) return Either.left(problem)
          }
        }
      }
    }
    return Either.right(out)
  }

  /** The archive ended: fine only once the entry is complete. */
  end(): Either.Either<void, TarProblem> {
    const state = this.#state
    if (state._tag === "Drain") return Either.void
    const atHeader = state._tag === "Collect" && !state.meta
    // An archive may end without its zero blocks once the entry is whole.
    if (this.#found && atHeader && state.filled === 0) return Either.void
    return Either.left(atHeader && !this.#found ? "Missing" : "Truncated")
  }

  #afterEntry(padding: number): State {
    this.#found = true
    if (!this.unique) return { _tag: "Drain" }
    return padding === 0 ? TarEntryReader.header() : { _tag: "Skip", left: padding }
  }

  #record(meta: Meta, data: Uint8Array): undefined {
    if (meta.type === "L") this.#longName = headerText(data, 0, meta.size)
    else this.#pax = paxRecords(data.subarray(0, meta.size))
    this.#state = TarEntryReader.header()
  }

  #header(header: Uint8Array): TarProblem | undefined {
    if (header.every((byte) => byte === 0)) {
      // The end of the archive.
      if (!this.#found) return "Missing"
      this.#state = { _tag: "Drain" }
      return undefined
    }
    const type = String.fromCharCode(header[156] ?? 0)
    const size = this.#pax.has("size")
      ? Number(this.#pax.get("size"))
      : headerNumber(header, 124, 12)
    const name = this.#pax.get("path") ?? this.#longName ?? headerPath(header)
    if (type === "L" || type === "x") {
      // Read into memory whole: a header may not make that unbounded.
      if (!(size <= MAX_RECORD_BYTES)) return "Oversized"
      this.#state = {
        _tag: "Collect",
        into: new Uint8Array(paddedSize(size)),
        filled: 0,
        meta: { type, size },
      }
      if (size === 0) this.#record({ type, size }, new Uint8Array(0))
      return undefined
    }
    this.#longName = undefined
    this.#pax = new Map()
    const regular = type === "0" || type === "\0" || type === "7"
    if (regular && this.wanted(name)) {
      if (this.#found) return "Several"
      this.#state = size === 0
        ? this.#afterEntry(0)
        : { _tag: "Entry", left: size, padding: paddedSize(size) - size }
    } else {
      this.#state = paddedSize(size) === 0
        ? TarEntryReader.header()
        : { _tag: "Skip", left: paddedSize(size) }
    }
    return undefined
  }
}

/**
 * The contents of the first regular file in the archive whose path `wanted` accepts. After that
 * file, the rest of the archive is read and discarded; with `unique`, its headers are read, and
 * a second file that `wanted` accepts is the problem "Several".
 */
export const tarEntry = <E2>(
  wanted: (path: string) => boolean,
  onProblem: (problem: TarProblem) => E2,
  unique = false,
) =>
<E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | E2, R> =>
  Stream.suspend(() => {
    const reader = new TarEntryReader(wanted, unique)
    return self.pipe(
      Stream.mapEffect((chunk) => Either.mapLeft(reader.push(chunk), onProblem)),
      Stream.flattenIterables,
      Stream.concat(
        Stream.drain(
          Stream.fromEffect(Effect.suspend(() => Either.mapLeft(reader.end(), onProblem))),
        ),
      ),
    )
  })
