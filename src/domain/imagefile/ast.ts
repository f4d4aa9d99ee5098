/**
 * The typed syntax tree of an Imagefile. Every node carries the span of source text it came
 * from, so validation and the builder can point back at the exact place.
 */
import * as Schema from "effect/Schema"

/** 1-based line and column; `endColumn` is the column just past the last character. */
export const Span = Schema.Struct({
  line: Schema.Number,
  column: Schema.Number,
  endLine: Schema.Number,
  endColumn: Schema.Number,
})
export type Span = typeof Span.Type

/** A value together with the span it was read from. */
export const Located = <A, I, R>(value: Schema.Schema<A, I, R>) =>
  Schema.Struct({ value, span: Span })

export const SizeUnit = Schema.Literal("MB", "GB")
export type SizeUnit = typeof SizeUnit.Type

/** A size as written (`20 GB`) and in bytes (MB = 2^20, GB = 2^30). */
export const Size = Schema.Struct({
  amount: Schema.Number,
  unit: SizeUnit,
  bytes: Schema.Number,
  span: Span,
})
export type Size = typeof Size.Type

export const PartitionTable = Schema.Literal("gpt", "mbr")
export type PartitionTable = typeof PartitionTable.Type

export const FILESYSTEMS = ["ext2", "ext3", "ext4", "xfs", "vfat", "swap"] as const
export const Filesystem = Schema.Literal(...FILESYSTEMS)
export type Filesystem = typeof Filesystem.Type

export const PARTITION_FLAGS = ["boot", "efi", "bios_grub"] as const
export const PartitionFlag = Schema.Literal(...PARTITION_FLAGS)
export type PartitionFlag = typeof PartitionFlag.Type

const common = {
  /** The whole logical line, continuations included. */
  span: Span,
  /** The instruction as it reads in a `Step i/N : ...` line (continuations joined). */
  text: Schema.String,
}

export const From = Schema.TaggedStruct("From", {
  ...common,
  /** `scratch` (any case) or an image spec (§5 of the design). */
  image: Located(Schema.String),
  scratch: Schema.Boolean,
})
export type From = typeof From.Type

export const Disk = Schema.TaggedStruct("Disk", {
  ...common,
  size: Size,
  table: Located(PartitionTable),
})
export type Disk = typeof Disk.Type

export const Format = Schema.Struct({
  /** The filesystem as written, lower-cased; validation checks it is one of FILESYSTEMS. */
  fs: Located(Schema.String),
  /** OPTIONS split into words like a shell would (never run through one). */
  options: Schema.optional(Located(Schema.Array(Schema.String))),
})
export type Format = typeof Format.Type

export const Partition = Schema.TaggedStruct("Partition", {
  ...common,
  number: Located(Schema.Number),
  size: Schema.optional(Size),
  format: Schema.optional(Format),
  mount: Schema.optional(Located(Schema.String)),
  /** Flags as written, lower-cased; validation checks each is one of PARTITION_FLAGS. */
  flags: Schema.optional(Located(Schema.Array(Located(Schema.String)))),
})
export type Partition = typeof Partition.Type

const transfer = {
  ...common,
  sources: Schema.Array(Located(Schema.String)),
  destination: Located(Schema.String),
}

export const Copy = Schema.TaggedStruct("Copy", transfer)
export type Copy = typeof Copy.Type

export const Add = Schema.TaggedStruct("Add", transfer)
export type Add = typeof Add.Type

export const Run = Schema.TaggedStruct("Run", {
  ...common,
  /** The rest of the logical line, verbatim; each `\`+newline continuation is removed, as Docker does. */
  command: Located(Schema.String),
})
export type Run = typeof Run.Type

export const Inspect = Schema.TaggedStruct("Inspect", common)
export type Inspect = typeof Inspect.Type

export const Instruction = Schema.Union(From, Disk, Partition, Copy, Add, Run, Inspect)
export type Instruction = typeof Instruction.Type

export const Imagefile = Schema.Struct({
  /** The file name used in diagnostics (`Imagefile`, `path/to/Imagefile`). */
  file: Schema.String,
  instructions: Schema.Array(Instruction),
})
export type Imagefile = typeof Imagefile.Type
