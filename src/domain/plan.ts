/**
 * BuildPlan: a validated Imagefile turned into ordered, typed actions. Pure.
 */
import type { Filesystem, PartitionTable } from "./imagefile/ast.ts"

export const SECTOR = 512
export const MiB = 1024 * 1024
/** The first partition starts 1 MiB into the disk, as partitioning tools align by default. */
export const FIRST_SECTOR = MiB / SECTOR
/** Sectors kept at the end of a GPT disk for the backup header and partition entries. */
export const GPT_BACKUP_SECTORS = 33

/** What a partition is for, from its FLAGS and FORMAT. */
export type PartitionType = "linux" | "efi" | "bios_grub" | "swap"

export interface PartitionLayout {
  readonly number: number
  readonly startSector: number
  readonly sizeSectors: number
  readonly type: PartitionType
  /** The MBR bootable flag, or the GPT legacy-BIOS-bootable attribute. */
  readonly bootable: boolean
}

export interface DiskLayout {
  readonly table: PartitionTable
  readonly sizeBytes: number
  readonly partitions: ReadonlyArray<PartitionLayout>
}

export interface MountPoint {
  readonly partition: number
  readonly path: string
}

export interface FormatAction {
  readonly partition: number
  readonly fs: Filesystem
  readonly options: ReadonlyArray<string>
}
