/**
 * Identifiers a reproducible build derives instead of drawing at random: the disk's and each
 * partition's GUID (or the MBR disk id), each filesystem's UUID, ext4's directory hash seed and
 * the vfat volume id. Each is a digest of a seed (the step-key chain, so the same inputs give
 * the same ids and other inputs other ones) and of what it identifies; UUIDs are shaped as
 * random (version 4) ones, as the tools that would have drawn them make them. Pure.
 */
import * as Either from "effect/Either"
import { createHash } from "node:crypto"

/** Bumped if the derivation ever changes, so that old and new ids never coincide. */
const DERIVATION = "transient-id-1"

const derivedBytes = (seed: string, purpose: string): Uint8Array =>
  new Uint8Array(createHash("sha256").update(`${DERIVATION}\0${seed}\0${purpose}`).digest())

const hex = (bytes: Uint8Array): string =>
  Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("")

/** A version 4, RFC 4122 variant UUID derived from `seed` for `purpose`, in lower case. */
export const derivedUuid = (seed: string, purpose: string): string => {
  const bytes = derivedBytes(seed, purpose).slice(0, 16)
  bytes[6] = (bytes[6]! & 0x0f) | 0x40
  bytes[8] = (bytes[8]! & 0x3f) | 0x80
  const text = hex(bytes)
  return [
    text.slice(0, 8),
    text.slice(8, 12),
    text.slice(12, 16),
    text.slice(16, 20),
    text.slice(20),
  ].join("-")
}

/** The GPT disk GUID (sfdisk's `label-id:`). */
export const gptDiskGuid = (seed: string): string => derivedUuid(seed, "gpt-disk")

/** The unique GUID of GPT partition `number` (sfdisk's `uuid=`). */
export const gptPartitionGuid = (seed: string, number: number): string =>
  derivedUuid(seed, `gpt-partition-${number}`)

/** The MBR disk identifier, `0x` and eight hex digits (sfdisk's `label-id:` for dos), never 0. */
export const mbrDiskId = (seed: string): string => {
  const id = hex(derivedBytes(seed, "mbr-disk").slice(0, 4))
  return `0x${id === "00000000" ? "00000001" : id}`
}

/** The UUID of the filesystem on partition `number` (mkfs's `-U`, xfs's `-m uuid=`). */
export const filesystemUuid = (seed: string, number: number): string =>
  derivedUuid(seed, `filesystem-${number}`)

/** ext2/3/4's directory-index hash seed on partition `number` (`mke2fs -E hash_seed=`). */
export const ext4HashSeed = (seed: string, number: number): string =>
  derivedUuid(seed, `ext4-hash-seed-${number}`)

/** The vfat volume id of partition `number` (`mkfs.vfat -i`): eight hex digits. */
export const vfatVolumeId = (seed: string, number: number): string =>
  hex(derivedBytes(seed, `vfat-volume-${number}`).slice(0, 4))

/** The last second `date` and the filesystems' 64-bit times agree on: 9999-12-31T23:59:59Z. */
const MAX_EPOCH = 253402300799

/**
 * `SOURCE_DATE_EPOCH` as reproducible-builds.org defines it: a decimal count of seconds since
 * 1970-01-01 UTC, no sign, no fraction. The Left says what is wrong, in one sentence.
 */
export const parseSourceDateEpoch = (text: string): Either.Either<number, string> => {
  if (!/^\d+$/.test(text)) {
    return Either.left(
      `SOURCE_DATE_EPOCH '${text}' is not a whole number of seconds since 1970 (such as 1700000000)`,
    )
  }
  const seconds = Number(text)
  return seconds > MAX_EPOCH
    ? Either.left(`SOURCE_DATE_EPOCH ${text} is after the year 9999`)
    : Either.right(seconds)
}
