/**
 * The OVA's parts: the OVF envelope, the manifest, the member names and the ustar headers
 * (read back by the store's own tar reader's rules: octal fields, checksum, magic).
 */
import assert from "node:assert/strict"
import {
  ovaManifest,
  ovaMemberNames,
  ovfEnvelope,
  tarPadding,
  ustarHeader,
} from "../../src/domain/ova_package.ts"

const machine = {
  name: "web & co",
  diskFile: "web-disk1.vmdk",
  capacityBytes: 2147483648,
  diskFileBytes: 123456,
  cpus: 4,
  memoryMiB: 2048,
  firmware: "uefi" as const,
}

Deno.test("the OVF holds the disk's capacity and file size, the CPUs, memory and firmware", () => {
  const ovf = ovfEnvelope(machine)
  assert.match(ovf, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<Envelope /)
  assert.match(ovf, /xmlns="http:\/\/schemas.dmtf.org\/ovf\/envelope\/1"/)
  assert.match(ovf, /<File ovf:href="web-disk1.vmdk" ovf:id="file1" ovf:size="123456"\/>/)
  assert.match(ovf, /<Disk ovf:capacity="2147483648" ovf:capacityAllocationUnits="byte"/)
  assert.match(ovf, /vmdk.html#streamOptimized/)
  assert.match(
    ovf,
    /<rasd:ResourceType>3<\/rasd:ResourceType>\n\s*<rasd:VirtualQuantity>4</,
  )
  assert.match(
    ovf,
    /<rasd:ResourceType>4<\/rasd:ResourceType>\n\s*<rasd:VirtualQuantity>2048</,
  )
  assert.match(ovf, /<rasd:ResourceSubType>lsilogic<\/rasd:ResourceSubType>/)
  assert.match(ovf, /<rasd:HostResource>ovf:\/disk\/vmdisk1<\/rasd:HostResource>/)
  assert.match(ovf, /<rasd:Parent>3<\/rasd:Parent>/)
  assert.match(ovf, /<vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"\/>/)
  assert.match(ovf, /<Name>web &amp; co<\/Name>/)
  assert.ok(!ovf.includes("web & co"))
})

Deno.test("a BIOS machine's OVF records bios firmware", () => {
  assert.match(ovfEnvelope({ ...machine, firmware: "bios" }), /vmw:value="bios"/)
})

Deno.test("the manifest has one SHA256 line per file, in order", () => {
  assert.equal(
    ovaManifest([{ file: "a.ovf", sha256: "ab" }, { file: "a-disk1.vmdk", sha256: "cd" }]),
    "SHA256(a.ovf)= ab\nSHA256(a-disk1.vmdk)= cd\n",
  )
})

Deno.test("member names come from the OVA's base name, reduced to safe characters", () => {
  assert.deepEqual(ovaMemberNames("/out/web.ova"), {
    name: "web",
    ovf: "web.ovf",
    disk: "web-disk1.vmdk",
    manifest: "web.mf",
  })
  assert.equal(ovaMemberNames("dir/my disk$.ova").name, "my_disk_")
  assert.equal(ovaMemberNames("../.hidden.ova").name, "hidden")
  assert.equal(ovaMemberNames(`${"x".repeat(300)}.ova`).name.length, 64)
})

const decoder = new TextDecoder()
const field = (header: Uint8Array, start: number, length: number) =>
  decoder.decode(header.subarray(start, start + length)).replace(/\0.*$/s, "")

Deno.test("a ustar header holds the name, size, mode, magic and a checksum that adds up", () => {
  const header = ustarHeader("web.ovf", 1234, 1_700_000_000)
  assert.equal(header.length, 512)
  assert.equal(field(header, 0, 100), "web.ovf")
  assert.equal(parseInt(field(header, 100, 8), 8), 0o644)
  assert.equal(parseInt(field(header, 124, 12), 8), 1234)
  assert.equal(parseInt(field(header, 136, 12), 8), 1_700_000_000)
  assert.equal(String.fromCharCode(header[156]!), "0")
  assert.equal(field(header, 257, 6), "ustar")
  assert.equal(field(header, 263, 2), "00")
  const stored = parseInt(field(header, 148, 8).trim(), 8)
  const blanked = header.slice()
  blanked.fill(0x20, 148, 156)
  assert.equal(stored, blanked.reduce((sum, byte) => sum + byte, 0))
})

Deno.test("a member of 8 GiB or more has its size in base-256", () => {
  const size = 20 * 1024 ** 3 + 5
  const header = ustarHeader("big.vmdk", size, 0)
  assert.equal(header[124], 0x80)
  let value = 0
  for (const byte of header.subarray(125, 136)) value = value * 256 + byte
  assert.equal(value, size)
})

Deno.test("a name longer than a ustar header holds is refused", () => {
  assert.throws(() => ustarHeader("x".repeat(101), 1, 0), RangeError)
})

Deno.test("members are padded to whole 512-byte blocks", () => {
  assert.equal(tarPadding(0).length, 0)
  assert.equal(tarPadding(1).length, 511)
  assert.equal(tarPadding(512).length, 0)
  assert.equal(tarPadding(1000).length, 24)
})
