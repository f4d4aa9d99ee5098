/**
 * The end of a command's output, for error messages: at most `maxBytes` are kept however much
 * the command writes, and they are decoded and split into lines only when asked, so following a
 * long output costs time linear in its size and a fixed amount of memory.
 */

export class OutputTail {
  #chunks: Array<Uint8Array> = []
  #size = 0

  constructor(readonly maxLines = 20, readonly maxBytes = 64 * 1024) {}

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return
    // A chunk larger than the whole tail only contributes its end.
    const kept = chunk.length > this.maxBytes ? chunk.slice(chunk.length - this.maxBytes) : chunk
    this.#chunks.push(kept)
    this.#size += kept.length
    while (this.#size - this.#chunks[0]!.length >= this.maxBytes) {
      this.#size -= this.#chunks.shift()!.length
    }
  }

  /** The last lines (trailing blanks trimmed, empty lines skipped), at most `maxLines`. */
  lines(): ReadonlyArray<string> {
    const bytes = new Uint8Array(this.#size)
    let offset = 0
    for (const chunk of this.#chunks) {
      bytes.set(chunk, offset)
      offset += chunk.length
    }
    const start = Math.max(0, bytes.length - this.maxBytes)
    return new TextDecoder().decode(bytes.subarray(start)).replaceAll("\r", "").split("\n")
      .map((line) => line.trimEnd()).filter((line) => line !== "").slice(-this.maxLines)
  }
}
