import assert from "node:assert/strict"
import { ELF_HEADER_BYTES, elfArchitecture } from "../../src/domain/elf_machine.ts"

/** An ELF header's first bytes: class, byte order and machine as given. */
const header = (bits: 1 | 2, order: 1 | 2, machine: number) => {
  const head = new Uint8Array(ELF_HEADER_BYTES)
  head.set([0x7f, 0x45, 0x4c, 0x46, bits, order, 1])
  new DataView(head.buffer).setUint16(18, machine, order === 1)
  return head
}

Deno.test("the architecture of an ELF header, named as platforms name it", () => {
  assert.deepEqual(elfArchitecture(header(2, 1, 62)), { architecture: "amd64" })
  assert.deepEqual(elfArchitecture(header(2, 1, 183)), { architecture: "arm64" })
  assert.deepEqual(elfArchitecture(header(1, 1, 40)), { architecture: "arm" })
  assert.deepEqual(elfArchitecture(header(1, 1, 3)), { architecture: "386" })
  assert.deepEqual(elfArchitecture(header(2, 1, 21)), { architecture: "ppc64le" })
  assert.deepEqual(elfArchitecture(header(2, 2, 21)), { architecture: "ppc64" })
  assert.deepEqual(elfArchitecture(header(2, 2, 22)), { architecture: "s390x" })
})

Deno.test("this host's own shell reads as what Deno says this machine is", async () => {
  using file = await Deno.open("/bin/sh")
  const head = new Uint8Array(ELF_HEADER_BYTES)
  assert.equal(await file.read(head), ELF_HEADER_BYTES)
  const expected = { x86_64: "amd64", aarch64: "arm64" }[Deno.build.arch as string]
  assert.deepEqual(elfArchitecture(head), { architecture: expected })
})

Deno.test("what is not an ELF executable of a known machine says why", () => {
  assert.match(
    (elfArchitecture(new TextEncoder().encode("#!/bin/sh\necho hi\n..")) as { problem: string })
      .problem,
    /not an ELF executable/,
  )
  assert.match(
    (elfArchitecture(new Uint8Array(4)) as { problem: string }).problem,
    /shorter than an ELF header/,
  )
  assert.match(
    (elfArchitecture(header(2, 1, 9999)) as { problem: string }).problem,
    /machine 9999/,
  )
  // A 64-bit class with a 32-bit machine is no header a linker writes.
  assert.match((elfArchitecture(header(2, 1, 40)) as { problem: string }).problem, /machine 40/)
})
