/**
 * Write a stream to a file, leaving all-zero blocks as holes: decompressed raw disk images are
 * mostly zeros, and writing them out would cost the disk space and time the image does not need.
 */

const BLOCK = 64 * 1024

const isZero = (block: Uint8Array): boolean => {
  // Compare eight bytes at a time where the block is aligned for it.
  const words = block.byteOffset % 8 === 0 ? Math.floor(block.length / 8) : 0
  if (words > 0) {
    const view = new BigUint64Array(block.buffer, block.byteOffset, words)
    for (let i = 0; i < view.length; i++) if (view[i] !== 0n) return false
  }
  for (let i = words * 8; i < block.length; i++) if (block[i] !== 0) return false
  return true
}

/** Copy `stream` into `path` (created, must not exist) sparsely; returns the bytes written. */
export const writeSparse = async (
  stream: ReadableStream<Uint8Array>,
  path: string,
): Promise<number> => {
  const file = await Deno.open(path, { createNew: true, write: true, mode: 0o600 })
  try {
    const block = new Uint8Array(BLOCK)
    let filled = 0
    let length = 0
    const flush = async () => {
      const data = block.subarray(0, filled)
      if (isZero(data)) await file.seek(filled, Deno.SeekMode.Current)
      else {
        let offset = 0
        while (offset < data.length) offset += await file.write(data.subarray(offset))
      }
      length += filled
      filled = 0
    }
    for await (const chunk of stream) {
      let offset = 0
      while (offset < chunk.length) {
        const take = Math.min(BLOCK - filled, chunk.length - offset)
        block.set(chunk.subarray(offset, offset + take), filled)
        filled += take
        offset += take
        if (filled === BLOCK) await flush()
      }
    }
    if (filled > 0) await flush()
    // Trailing holes have no bytes to give the file its length.
    await file.truncate(length)
    return length
  } finally {
    file.close()
  }
}
