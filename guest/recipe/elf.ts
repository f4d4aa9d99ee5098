/** Just enough ELF to find what a binary needs at run time: its interpreter and DT_NEEDED. */

export interface ElfDependencies {
  /** PT_INTERP, e.g. `/lib64/ld-linux-x86-64.so.2`; absent for static binaries and libraries. */
  readonly interpreter?: string
  /** The DT_NEEDED sonames, in order. */
  readonly needed: ReadonlyArray<string>
}

const PT_LOAD = 1
const PT_DYNAMIC = 2
const PT_INTERP = 3
const DT_NULL = 0n
const DT_NEEDED = 1n
const DT_STRTAB = 5n

/** The dependencies of a 64-bit little-endian ELF file, or undefined if `bytes` is not one. */
export const elfDependencies = (bytes: Uint8Array): ElfDependencies | undefined => {
  if (bytes.length < 64 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c) {
    return undefined
  }
  if (bytes[3] !== 0x46 || bytes[4] !== 2 || bytes[5] !== 1) return undefined
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const phoff = Number(view.getBigUint64(0x20, true))
  const phentsize = view.getUint16(0x36, true)
  const phnum = view.getUint16(0x38, true)
  const headers = Array.from({ length: phnum }, (_, index) => {
    const at = phoff + index * phentsize
    return {
      type: view.getUint32(at, true),
      offset: Number(view.getBigUint64(at + 8, true)),
      vaddr: view.getBigUint64(at + 16, true),
      filesz: view.getBigUint64(at + 32, true),
    }
  })
  const cString = (offset: number): string => {
    const end = bytes.indexOf(0, offset)
    return new TextDecoder().decode(bytes.subarray(offset, end < 0 ? bytes.length : end))
  }
  const fileOffset = (vaddr: bigint): number => {
    const load = headers.find((header) =>
      header.type === PT_LOAD && vaddr >= header.vaddr && vaddr < header.vaddr + header.filesz
    )
    if (load === undefined) throw new Error(`address 0x${vaddr.toString(16)} is in no segment`)
    return load.offset + Number(vaddr - load.vaddr)
  }
  const interp = headers.find((header) => header.type === PT_INTERP)
  const dynamic = headers.find((header) => header.type === PT_DYNAMIC)
  const neededOffsets: Array<bigint> = []
  let strtab: bigint | undefined
  if (dynamic !== undefined) {
    for (let at = dynamic.offset; at + 16 <= bytes.length; at += 16) {
      const tag = view.getBigInt64(at, true)
      const value = view.getBigUint64(at + 8, true)
      if (tag === DT_NULL) break
      if (tag === DT_NEEDED) neededOffsets.push(value)
      if (tag === DT_STRTAB) strtab = value
    }
  }
  const needed = strtab === undefined
    ? []
    : neededOffsets.map((offset) => cString(fileOffset(strtab!) + Number(offset)))
  return interp === undefined ? { needed } : { interpreter: cString(interp.offset), needed }
}
