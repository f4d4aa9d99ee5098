/**
 * Disk geometry: where partitions may go on a disk of a given size and table. One definition
 * for the validator (does it fit?) and the planner (where does each partition start?). Pure.
 */
import type { PartitionTable } from "./imagefile/ast.ts"

export const SECTOR = 512
export const MiB = 1024 * 1024
/** The first partition starts 1 MiB into the disk, as partitioning tools align by default. */
export const FIRST_SECTOR = MiB / SECTOR
/** Sectors kept at the end of a GPT disk for the backup header and partition entries. */
export const GPT_BACKUP_SECTORS = 33

/** Whole sectors in `bytes`. */
export const sectorsIn = (bytes: number): number => Math.floor(bytes / SECTOR)

/** The sectors partitions may use: from `first` up to, not including, `end`. */
export const usableSectors = (
  sizeBytes: number,
  table: PartitionTable,
): { readonly first: number; readonly end: number } => ({
  first: FIRST_SECTOR,
  end: sectorsIn(sizeBytes) - (table === "gpt" ? GPT_BACKUP_SECTORS : 0),
})

/** The bytes partitions may use on such a disk. */
export const usableBytes = (sizeBytes: number, table: PartitionTable): number => {
  const { first, end } = usableSectors(sizeBytes, table)
  return Math.max(end - first, 0) * SECTOR
}

/** What the table keeps free, as a message says it. */
export const reservedSpace = (table: PartitionTable): string =>
  table === "gpt"
    ? "1 MiB at the start and 33 sectors at the end for the backup GPT are kept free"
    : "1 MiB at the start is kept free"
