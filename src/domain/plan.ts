/**
 * BuildPlan: a validated Imagefile turned into ordered, typed actions. Pure.
 */
import * as Data from "effect/Data"
import type {
  Disk,
  Filesystem,
  From,
  Imagefile,
  Instruction,
  Partition,
  PartitionTable,
  Span,
} from "./imagefile/ast.ts"

import { sectorsIn, usableSectors } from "./disk_geometry.ts"

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

/** What one step of the build does, in order. */
export type Action = Data.TaggedEnum<{
  /** FROM scratch + DISK: a new disk, its partition table and partitions. */
  CreateDisk: { readonly layout: DiskLayout }
  /** FROM <spec>: a copy of the base image, its root filesystem found and mounted. */
  UseBase: { readonly spec: string }
  Format: { readonly format: FormatAction }
  /** Mount the scratch disk's partitions, shallowest first. */
  Mount: { readonly mounts: ReadonlyArray<MountPoint> }
  Copy: { readonly sources: ReadonlyArray<string>; readonly destination: string }
  Add: { readonly sources: ReadonlyArray<string>; readonly destination: string }
  Run: { readonly command: string }
  Inspect: Record<never, never>
}>
export const Action = Data.taggedEnum<Action>()

/** One instruction of the Imagefile and what it does: the unit of `Step i/N : ...`. */
export interface PlanStep {
  /** 1-based. */
  readonly index: number
  readonly text: string
  readonly span: Span
  readonly actions: ReadonlyArray<Action>
}

export interface BuildPlan {
  readonly base:
    | { readonly _tag: "Scratch"; readonly layout: DiskLayout }
    | { readonly _tag: "Image"; readonly spec: string }
  readonly steps: ReadonlyArray<PlanStep>
  /** Every COPY/ADD source, in order of first use, to be checked before anything starts. */
  readonly sources: ReadonlyArray<string>
  /** Where each source is first named, as `file:line:column`, for error messages. */
  readonly sourceLocations: ReadonlyMap<string, string>
  /** How many leading steps set the disk up: FROM, and after `FROM scratch` DISK and PARTITIONs. */
  readonly preludeSteps: number
}

const partitionType = (partition: Partition): PartitionType => {
  const flags = new Set(partition.flags?.value.map((flag) => flag.value) ?? [])
  if (flags.has("efi")) return "efi"
  if (flags.has("bios_grub")) return "bios_grub"
  if (partition.format?.fs.value === "swap") return "swap"
  return "linux"
}

/** Lay partitions out back to back from 1 MiB; a SIZE-less (last) one takes the rest. */
export const diskLayout = (disk: Disk, partitions: ReadonlyArray<Partition>): DiskLayout => {
  const usable = usableSectors(disk.size.bytes, disk.table.value)
  let start = usable.first
  const layouts = [...partitions]
    .sort((a, b) => a.number.value - b.number.value)
    .map((partition): PartitionLayout => {
      const sizeSectors = partition.size ? sectorsIn(partition.size.bytes) : usable.end - start
      const layout = {
        number: partition.number.value,
        startSector: start,
        sizeSectors,
        type: partitionType(partition),
        bootable: partition.flags?.value.some((flag) => flag.value === "boot") ?? false,
      }
      start += sizeSectors
      return layout
    })
  return { table: disk.table.value, sizeBytes: disk.size.bytes, partitions: layouts }
}

const depth = (path: string): number => path.split("/").filter((part) => part !== "").length

/** Mount points shallowest first (`/` before `/boot` before `/boot/efi`), so none is hidden. */
export const mountOrder = (partitions: ReadonlyArray<Partition>): ReadonlyArray<MountPoint> =>
  partitions
    .flatMap((partition) =>
      partition.mount ? [{ partition: partition.number.value, path: partition.mount.value }] : []
    )
    .sort((a, b) => depth(a.path) - depth(b.path) || a.path.localeCompare(b.path))

/**
 * Turn a validated Imagefile into a BuildPlan. The Imagefile must have passed validation: this
 * function trusts its structure (one FROM first, DISK and PARTITIONs right after a scratch FROM).
 */
export const planBuild = (imagefile: Imagefile): BuildPlan => {
  const instructions = imagefile.instructions
  const disk = instructions.find((i): i is Disk => i._tag === "Disk")
  const partitions = instructions.filter((i): i is Partition => i._tag === "Partition")
  const from = instructions.find((i): i is From => i._tag === "From")
  const layout = disk ? diskLayout(disk, partitions) : undefined
  const lastPartition = partitions[partitions.length - 1]
  const sources: Array<string> = []
  const sourceLocations = new Map<string, string>()
  const addSources = (list: ReadonlyArray<{ readonly value: string; readonly span: Span }>) => {
    for (const { value, span } of list) {
      if (sourceLocations.has(value)) continue
      sources.push(value)
      sourceLocations.set(value, `${imagefile.file}:${span.line}:${span.column}`)
    }
  }

  const actionsOf = (instruction: Instruction): ReadonlyArray<Action> => {
    switch (instruction._tag) {
      case "From":
        return instruction.scratch ? [] : [Action.UseBase({ spec: instruction.image.value })]
      case "Disk":
        return layout ? [Action.CreateDisk({ layout })] : []
      case "Partition": {
        const actions: Array<Action> = []
        const format = instruction.format
        if (format) {
          actions.push(Action.Format({
            format: {
              partition: instruction.number.value,
              fs: format.fs.value as Filesystem,
              options: format.options?.value ?? [],
            },
          }))
        }
        if (instruction === lastPartition) {
          actions.push(Action.Mount({ mounts: mountOrder(partitions) }))
        }
        return actions
      }
      case "Copy":
      case "Add": {
        addSources(instruction.sources)
        const transfer = {
          sources: instruction.sources.map((source) => source.value),
          destination: instruction.destination.value,
        }
        return [instruction._tag === "Copy" ? Action.Copy(transfer) : Action.Add(transfer)]
      }
      case "Run":
        return [Action.Run({ command: instruction.command.value })]
      case "Inspect":
        return [Action.Inspect()]
    }
  }

  const steps = instructions.map((instruction, i): PlanStep => ({
    index: i + 1,
    text: instruction.text,
    span: instruction.span,
    actions: actionsOf(instruction),
  }))
  const base = layout
    ? { _tag: "Scratch" as const, layout }
    : { _tag: "Image" as const, spec: from?.image.value ?? "" }
  const setup = instructions.findIndex((i) =>
    i._tag !== "From" && i._tag !== "Disk" && i._tag !== "Partition"
  )
  const preludeSteps = setup === -1 ? instructions.length : setup
  return { base, steps, sources, sourceLocations, preludeSteps }
}
