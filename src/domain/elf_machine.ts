/**
 * The architecture an ELF executable is for, from its header: how a base image's root
 * filesystem tells its platform (its `/bin/sh` or `/sbin/init`) before a build runs anything of
 * it. Named as container platforms name architectures. Pure.
 */

/** How many leading bytes of a file `elfArchitecture` reads. */
export const ELF_HEADER_BYTES = 20

/** e_machine values with the ELF class they come in, by the architecture they stand for. */
const MACHINES: ReadonlyArray<readonly [number, 32 | 64, string]> = [
  [62, 64, "amd64"], // EM_X86_64
  [183, 64, "arm64"], // EM_AARCH64
  [3, 32, "386"], // EM_386
  [40, 32, "arm"], // EM_ARM
  [243, 64, "riscv64"], // EM_RISCV
  [21, 64, "ppc64"], // EM_PPC64 (ppc64le when little-endian)
  [22, 64, "s390x"], // EM_S390
]

/**
 * The architecture of the ELF file whose first bytes are `head`, or why there is none: not an
 * ELF file, cut short, or a machine this list does not name.
 */
export const elfArchitecture = (
  head: Uint8Array,
): { readonly architecture: string } | { readonly problem: string } => {
  if (head.length < ELF_HEADER_BYTES) return { problem: "it is shorter than an ELF header" }
  if (head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) {
    return { problem: "it is not an ELF executable" }
  }
  const bits = head[4] === 1 ? 32 : head[4] === 2 ? 64 : undefined
  const littleEndian = head[5] === 1
  if (bits === undefined || (head[5] !== 1 && head[5] !== 2)) {
    return { problem: "its ELF header names no valid class or byte order" }
  }
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength)
  const machine = view.getUint16(18, littleEndian)
  const known = MACHINES.find(([number, width]) => number === machine && width === bits)
  if (known === undefined) {
    return { problem: `its ELF machine ${machine} is not one transient knows` }
  }
  const architecture = known[2]
  return { architecture: architecture === "ppc64" && littleEndian ? "ppc64le" : architecture }
}
