/**
 * The text and framing of an OVA: the OVF 1.0 envelope (the virtual machine), the manifest of
 * SHA-256 digests, and the ustar headers of the tar that holds them, the envelope first (as
 * OVF 1.0 requires of an OVA), then the disk, then the manifest.
 */

import type { Firmware } from "./firmware.ts"

export interface OvfMachine {
  /** The virtual machine's name (shown by the importer). */
  readonly name: string
  /** The disk's file name inside the OVA. */
  readonly diskFile: string
  /** The disk's size as the guest sees it, in bytes. */
  readonly capacityBytes: number
  /** The size of the disk's (streamOptimized VMDK) file, in bytes. */
  readonly diskFileBytes: number
  readonly cpus: number
  readonly memoryMiB: number
  /** Recorded as VMware reads it: `efi` or `bios`. */
  readonly firmware: Firmware
}

const xmlEscaped = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;")

/** One rasd Item; its elements in the schema's (alphabetical) order. */
const item = (fields: ReadonlyArray<readonly [string, string]>): string =>
  [
    "      <Item>",
    ...fields.map(([key, value]) => `        <rasd:${key}>${xmlEscaped(value)}</rasd:${key}>`),
    "      </Item>",
  ].join("\n")

/** The OVF 1.0 envelope: one disk on an LSI Logic SCSI controller, CPUs, memory, firmware. */
export const ovfEnvelope = (machine: OvfMachine): string => {
  const name = xmlEscaped(machine.name)
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"` +
    ` xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"` +
    ` xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"` +
    ` xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"` +
    ` xmlns:vmw="http://www.vmware.com/schema/ovf"` +
    ` xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`,
    `  <References>`,
    `    <File ovf:href="${xmlEscaped(machine.diskFile)}" ovf:id="file1"` +
    ` ovf:size="${machine.diskFileBytes}"/>`,
    `  </References>`,
    `  <DiskSection>`,
    `    <Info>Virtual disk information</Info>`,
    `    <Disk ovf:capacity="${machine.capacityBytes}" ovf:capacityAllocationUnits="byte"` +
    ` ovf:diskId="vmdisk1" ovf:fileRef="file1"` +
    ` ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>`,
    `  </DiskSection>`,
    `  <VirtualSystem ovf:id="${name}">`,
    `    <Info>A virtual machine</Info>`,
    `    <Name>${name}</Name>`,
    `    <OperatingSystemSection ovf:id="101" vmw:osType="otherLinux64Guest">`,
    `      <Info>The kind of installed guest operating system</Info>`,
    `      <Description>Linux 64-bit</Description>`,
    `    </OperatingSystemSection>`,
    `    <VirtualHardwareSection>`,
    `      <Info>Virtual hardware requirements</Info>`,
    `      <System>`,
    `        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>`,
    `        <vssd:InstanceID>0</vssd:InstanceID>`,
    `        <vssd:VirtualSystemIdentifier>${name}</vssd:VirtualSystemIdentifier>`,
    `        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>`,
    `      </System>`,
    item([
      ["AllocationUnits", "hertz * 10^6"],
      ["Description", "Number of Virtual CPUs"],
      ["ElementName", `${machine.cpus} virtual CPU(s)`],
      ["InstanceID", "1"],
      ["ResourceType", "3"],
      ["VirtualQuantity", String(machine.cpus)],
    ]),
    item([
      ["AllocationUnits", "byte * 2^20"],
      ["Description", "Memory Size"],
      ["ElementName", `${machine.memoryMiB}MB of memory`],
      ["InstanceID", "2"],
      ["ResourceType", "4"],
      ["VirtualQuantity", String(machine.memoryMiB)],
    ]),
    item([
      ["Address", "0"],
      ["Description", "SCSI Controller"],
      ["ElementName", "SCSI Controller 0"],
      ["InstanceID", "3"],
      ["ResourceSubType", "lsilogic"],
      ["ResourceType", "6"],
    ]),
    item([
      ["AddressOnParent", "0"],
      ["ElementName", "Hard Disk 1"],
      ["HostResource", "ovf:/disk/vmdisk1"],
      ["InstanceID", "4"],
      ["Parent", "3"],
      ["ResourceType", "17"],
    ]),
    `      <vmw:Config ovf:required="false" vmw:key="firmware"` +
    ` vmw:value="${machine.firmware === "uefi" ? "efi" : "bios"}"/>`,
    `    </VirtualHardwareSection>`,
    `  </VirtualSystem>`,
    `</Envelope>`,
    ``,
  ].join("\n")
}

/** The manifest: one `SHA256(FILE)= HEX` line per file, in the order given. */
export const ovaManifest = (
  digests: ReadonlyArray<{ readonly file: string; readonly sha256: string }>,
): string => digests.map(({ file, sha256 }) => `SHA256(${file})= ${sha256}\n`).join("")

/**
 * The member names of the OVA written as `path`: from its base name, reduced to what every tar
 * and importer takes (and short enough for a ustar name).
 */
export const ovaMemberNames = (path: string) => {
  const base = path.slice(path.lastIndexOf("/") + 1).replace(/\.ova$/i, "")
  const name = base.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^[.-]+/, "").slice(0, 64) || "image"
  return { name, ovf: `${name}.ovf`, disk: `${name}-disk1.vmdk`, manifest: `${name}.mf` }
}

export const TAR_BLOCK = 512

/** The zero bytes after a member of `size` bytes, to the next block. */
export const tarPadding = (size: number): Uint8Array =>
  new Uint8Array((TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK)

/** The end of an archive: two zero blocks. */
export const tarEnd = (): Uint8Array => new Uint8Array(2 * TAR_BLOCK)

const encoder = new TextEncoder()

const putText = (header: Uint8Array, offset: number, length: number, text: string) => {
  header.set(encoder.encode(text).subarray(0, length), offset)
}

/** A numeric field: octal digits and a NUL; GNU base-256 when the octal would not fit. */
const putNumber = (header: Uint8Array, offset: number, length: number, value: number) => {
  const octal = value.toString(8)
  if (octal.length < length) {
    putText(header, offset, length, `${octal.padStart(length - 1, "0")}\0`)
    return
  }
  let rest = BigInt(value)
  for (let index = offset + length - 1; index > offset; index--) {
    header[index] = Number(rest & 0xffn)
    rest >>= 8n
  }
  header[offset] = 0x80
}

/** The ustar header of a regular file `name` (at most 100 bytes) of `size` bytes. */
export const ustarHeader = (
  name: string,
  size: number,
  modifiedSeconds: number,
): Uint8Array => {
  if (encoder.encode(name).length > 100) throw new RangeError(`tar member name too long: ${name}`)
  const header = new Uint8Array(TAR_BLOCK)
  putText(header, 0, 100, name)
  putNumber(header, 100, 8, 0o644)
  putNumber(header, 108, 8, 0)
  putNumber(header, 116, 8, 0)
  putNumber(header, 124, 12, size)
  putNumber(header, 136, 12, Math.max(0, Math.floor(modifiedSeconds)))
  header.set(encoder.encode("        "), 148)
  header[156] = "0".charCodeAt(0)
  putText(header, 257, 6, "ustar\0")
  putText(header, 263, 2, "00")
  putText(header, 265, 32, "root")
  putText(header, 297, 32, "root")
  const checksum = header.reduce((sum, byte) => sum + byte, 0)
  putText(header, 148, 8, `${checksum.toString(8).padStart(6, "0")}\0 `)
  return header
}
