/**
 * The fields of a tar header block (ustar, GNU, and the pax headers that extend them), with no
 * imports: the host's tar readers (src/layers/store/tar_entry.ts, src/layers/container/
 * tar_members.ts) and the guest's layer applier (guest/apply_layer.ts) read headers alike.
 */

export const TAR_BLOCK = 512

const utf8 = new TextDecoder()

/** A text field: its bytes up to the first NUL. */
export const headerText = (block: Uint8Array, start: number, length: number): string => {
  const field = block.subarray(start, start + length)
  const end = field.indexOf(0)
  return utf8.decode(end === -1 ? field : field.subarray(0, end))
}

/** A numeric field: octal text, or base-256 (GNU: the high bit of the first byte set). */
export const headerNumber = (block: Uint8Array, start: number, length: number): number => {
  const first = block[start]!
  if (first & 0x80) {
    const negative = first === 0xff
    let value = negative ? 0xff ^ first : first & 0x7f
    for (let i = start + 1; i < start + length; i++) {
      value = value * 256 + (negative ? 0xff ^ block[i]! : block[i]!)
    }
    return negative ? -(value + 1) : value
  }
  let value = 0
  let i = start
  const end = start + length
  while (i < end && (block[i] === 0x20 || block[i] === 0)) i++
  for (; i < end; i++) {
    const digit = block[i]! - 0x30
    if (digit < 0 || digit > 7) break
    value = value * 8 + digit
  }
  return value
}

/** Whether the header's checksum holds (unsigned, or signed as some old tars summed). */
export const checksumHolds = (block: Uint8Array): boolean => {
  const expected = headerNumber(block, 148, 8)
  let unsigned = 8 * 0x20
  let signed = 8 * 0x20
  for (let i = 0; i < TAR_BLOCK; i++) {
    if (i >= 148 && i < 156) continue
    const byte = block[i]!
    unsigned += byte
    signed += byte > 127 ? byte - 256 : byte
  }
  return expected === unsigned || expected === signed
}

/** The path of a header: its prefix field counts only in ustar, not in GNU headers. */
export const headerPath = (block: Uint8Array): string => {
  const name = headerText(block, 0, 100)
  const ustar = block[257] === 0x75 && block[262] === 0 && block[263] === 0x30 // "ustar\0" "00"
  const prefix = ustar ? headerText(block, 345, 155) : ""
  return prefix === "" ? name : `${prefix}/${name}`
}

/** A member's size rounded up to whole blocks: what its contents take in the archive. */
export const paddedSize = (size: number): number => Math.ceil(size / TAR_BLOCK) * TAR_BLOCK
