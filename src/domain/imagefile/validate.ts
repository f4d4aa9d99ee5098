/**
 * Validation: the rules of an Imagefile beyond its grammar (DESIGN.md §2). Every problem is
 * reported, each at the place it concerns. Messages of the rules the original transient had are
 * kept word for word, so its users recognise them.
 */
import * as Either from "effect/Either"
import { FILESYSTEMS, PARTITION_FLAGS } from "./ast.ts"
import type * as Ast from "./ast.ts"
import { type Diagnostic, makeDiagnostic, type Severity } from "./diagnostic.ts"
import { joinOr, type Keyword, type ParsedLine } from "./grammar.ts"
import { closestWord } from "./suggest.ts"
import { MiB, reservedSpace, SECTOR, usableBytes } from "../disk_geometry.ts"
import { diskLayout, type PartitionLayout } from "../plan.ts"
import { isContainerSource, parseContainerSource } from "../container_source.ts"
import { confineSource, normalizeAbsolute } from "../source_path.ts"

const START_OF_FILE: Ast.Span = { line: 1, column: 1, endLine: 1, endColumn: 1 }

const isPartition = (instruction: Ast.Instruction | undefined): instruction is Ast.Partition =>
  instruction?._tag === "Partition"

const mebibytes = (bytes: number): string => {
  const value = bytes / MiB
  return `${Number.isInteger(value) ? value : value.toFixed(2)} MiB`
}

/** Check `lines` (the logical lines whose keyword is known) of `file`. */
export const validate = (file: string, lines: ReadonlyArray<ParsedLine>): Array<Diagnostic> => {
  const diagnostics: Array<Diagnostic> = []
  const report: Report = (span, code, message, severity) =>
    diagnostics.push(makeDiagnostic(file, span, code, message, severity))
  const ofKind = (keyword: Keyword) => lines.filter((line) => line.keyword === keyword)

  const from = checkFrom(lines, ofKind("FROM"), report)
  // DISK and PARTITION: only, and necessarily, for scratch. Unknown when FROM did not parse.
  const scratch = from?.instruction?._tag === "From" ? from.instruction.scratch : undefined
  const disks = ofKind("DISK")
  const partitions = ofKind("PARTITION")
  if (scratch === false) {
    for (const line of [...disks, ...partitions]) {
      report(
        line.span,
        "disk-not-scratch",
        "DISK and PARTITION instructions can only appear on images built from scratch",
      )
    }
  }
  if (scratch === true && from !== undefined) {
    checkScratchDisk(lines, from, disks, partitions, report)
  }
  checkInstructions(lines, report)
  checkMountsUnique(partitions, report)
  return diagnostics
}

type Report = (span: Ast.Span, code: string, message: string, severity?: Severity) => void

/** FROM: exactly one, first. The FROM that counts, when there is one. */
const checkFrom = (
  lines: ReadonlyArray<ParsedLine>,
  froms: ReadonlyArray<ParsedLine>,
  report: Report,
): ParsedLine | undefined => {
  if (froms.length === 0) {
    report(
      lines[0]?.span ?? START_OF_FILE,
      "from-count",
      "Exactly one FROM instruction must appear per Imagefile",
    )
  }
  for (const extra of froms.slice(1)) {
    report(extra.span, "from-count", "Exactly one FROM instruction must appear per Imagefile")
  }
  const from = froms[0]
  if (from !== undefined && lines[0] !== from) {
    report(
      from.span,
      "from-not-first",
      "FROM instruction must appear before any other instructions",
    )
  }
  return from
}

/** A scratch image's DISK and PARTITIONs: present, in order, one mounted at /, and they fit. */
const checkScratchDisk = (
  lines: ReadonlyArray<ParsedLine>,
  from: ParsedLine,
  disks: ReadonlyArray<ParsedLine>,
  partitions: ReadonlyArray<ParsedLine>,
  report: Report,
) => {
  if (disks.length === 0) {
    report(
      from.span,
      "disk-missing",
      "Exactly one DISK instruction must appear in images built from scratch",
    )
  }
  for (const extra of disks.slice(1)) {
    report(extra.span, "disk-count", "Only one DISK instruction can appear per Imagefile")
  }
  if (partitions.length === 0) {
    report(
      disks[0]?.span ?? from.span,
      "partition-missing",
      "At least one PARTITION instruction must appear in images built from scratch",
    )
  }
  lines.forEach((line, index) => {
    const previous = lines[index - 1]?.keyword
    if (line === disks[0] && previous !== "FROM") {
      report(
        line.span,
        "disk-order",
        "DISK instruction must appear immediately after FROM instruction",
      )
    }
    if (line.keyword === "PARTITION" && previous !== "DISK" && previous !== "PARTITION") {
      report(
        line.span,
        "partition-order",
        "PARTITION instructions must appear immediately after DISK instruction",
      )
    }
  })
  const parsed = partitions.map((line) => line.instruction).filter(isPartition)
  // A partition that did not parse may have been the one mounted at /: don't guess.
  if (parsed.length > 0 && parsed.length === partitions.length) {
    const root = parsed.some((p) =>
      p.mount !== undefined && normalizeAbsolute(p.mount.value) === "/"
    )
    if (!root) {
      report(
        disks[0]?.span ?? from.span,
        "root-mount-missing",
        "At least one PARTITION instruction must mount at /",
      )
    }
  }
  const disk = disks[0]?.instruction
  checkLayout(disk?._tag === "Disk" ? disk : undefined, partitions, report)
}

/** The rules of each instruction on its own. */
const checkInstructions = (lines: ReadonlyArray<ParsedLine>, report: Report) => {
  for (const line of lines) {
    const instruction = line.instruction
    if (instruction === undefined) continue
    switch (instruction._tag) {
      case "Disk":
        checkSize(instruction.size, "disk", report)
        break
      case "Partition":
        checkPartition(instruction, report)
        break
      case "Copy":
      case "Add":
        checkTransfer(instruction, report)
        break
      case "Run":
        checkRun(instruction, report)
        break
    }
  }
}

/** MOUNT points are unique. */
const checkMountsUnique = (partitions: ReadonlyArray<ParsedLine>, report: Report) => {
  const mounts = new Map<string, number>()
  for (const partition of partitions.map((line) => line.instruction).filter(isPartition)) {
    if (partition.mount === undefined) continue
    const path = normalizeAbsolute(partition.mount.value)
    const owner = mounts.get(path)
    if (owner === undefined) mounts.set(path, partition.number.value)
    else {
      report(
        partition.mount.span,
        "mount-duplicate",
        `mount point '${partition.mount.value}' is already used by partition ${owner}`,
      )
    }
  }
}

/**
 * The longest RUN command: it is one argument of `/bin/sh -c` in the guest, and Linux refuses
 * an argument of 128 KiB or more (MAX_ARG_STRLEN) before the shell even starts.
 */
export const MAX_RUN_BYTES = 128 * 1024 - 1

const checkRun = (run: Ast.Run, report: Report) => {
  const command = run.command
  if (command.value.includes("\0")) {
    report(command.span, "run-nul", "a RUN command cannot contain a NUL character")
  }
  const bytes = new TextEncoder().encode(command.value).length
  if (bytes > MAX_RUN_BYTES) {
    report(
      command.span,
      "run-too-long",
      `this RUN command is ${bytes} bytes; the longest one the guest can run is ${MAX_RUN_BYTES}`,
    )
  }
}

const checkSize = (size: Ast.Size, what: string, report: Report) => {
  if (size.amount === 0) {
    report(size.span, "size-zero", `the ${what} size must be greater than zero`)
  } else if (!Number.isSafeInteger(size.bytes)) {
    report(size.span, "size-too-large", `the ${what} size ${size.amount} ${size.unit} is too large`)
  }
}

const checkPartition = (partition: Ast.Partition, report: Report) => {
  if (partition.size !== undefined) checkSize(partition.size, "partition", report)
  const fs = partition.format?.fs
  if (fs !== undefined && !(FILESYSTEMS as ReadonlyArray<string>).includes(fs.value)) {
    const suggestion = closestWord(fs.value, FILESYSTEMS)
    report(
      fs.span,
      "unsupported-format",
      `Unsupported partition format '${fs.value}' (${
        suggestion === undefined
          ? `expected ${joinOr(FILESYSTEMS)}`
          : `did you mean '${suggestion}'?`
      })`,
    )
  }
  const mount = partition.mount
  if (mount !== undefined) {
    if (!mount.value.startsWith("/")) {
      report(
        mount.span,
        "mount-not-absolute",
        `mount point '${mount.value}' must be an absolute path (starting with /)`,
      )
    }
    if (fs?.value === "swap") {
      report(mount.span, "swap-mount", "a swap partition cannot be mounted")
    } else if (fs === undefined) {
      report(
        mount.span,
        "mount-unformatted",
        `partition ${partition.number.value} is mounted at '${mount.value}' but has no FORMAT, ` +
          "so it holds no filesystem to mount",
        "warning",
      )
    }
  }
  const flags = partition.flags?.value ?? []
  const seen = new Set<string>()
  for (const flag of flags) {
    if (!(PARTITION_FLAGS as ReadonlyArray<string>).includes(flag.value)) {
      const suggestion = closestWord(flag.value, PARTITION_FLAGS)
      report(
        flag.span,
        "unknown-flag",
        `unknown partition flag '${flag.value}' (${
          suggestion === undefined
            ? "expected boot, efi or bios_grub"
            : `did you mean '${suggestion}'?`
        })`,
      )
    } else if (seen.has(flag.value)) {
      report(flag.span, "duplicate-flag", `flag '${flag.value}' is given twice`, "warning")
    }
    seen.add(flag.value)
  }
  if (seen.has("efi") && seen.has("bios_grub")) {
    report(
      partition.flags!.span,
      "conflicting-flags",
      "flags efi and bios_grub both set the partition type; a partition can have only one",
    )
  }
}

const checkTransfer = (transfer: Ast.Copy | Ast.Add, report: Report) => {
  const name = transfer._tag === "Copy" ? "COPY" : "ADD"
  for (const source of transfer.sources) {
    if (transfer._tag === "Copy" && isContainerSource(source.value)) {
      report(
        source.span,
        "copy-container-image",
        `COPY copies files of the build directory, not the container image '${source.value}'; ` +
          "use ADD to unpack it",
      )
    } else if (isContainerSource(source.value)) {
      const parsed = parseContainerSource(source.value)
      if (Either.isLeft(parsed)) report(source.span, "container-source", parsed.left)
    } else if (source.value.startsWith("/")) {
      report(
        source.span,
        "source-absolute",
        `${name} source '${source.value}' must be relative to the build directory, not absolute`,
      )
    } else if ("refused" in confineSource(source.value)) {
      report(
        source.span,
        "source-escapes",
        `${name} source '${source.value}' leaves the build directory`,
      )
    }
  }
  const destination = transfer.destination
  if (!destination.value.startsWith("/")) {
    report(
      destination.span,
      "relative-destination",
      `destination '${destination.value}' is not absolute; it is taken from / of the image`,
      "warning",
    )
  }
}

/** Numbering, SIZE-less partitions, the partition table's limits and the disk's capacity. */
const checkLayout = (
  disk: Ast.Disk | undefined,
  lines: ReadonlyArray<ParsedLine>,
  report: Report,
) => {
  const table = disk?.table.value
  lines.forEach((line, index) => {
    const partition = line.instruction
    if (!isPartition(partition)) return
    const expected = index + 1
    if (partition.number.value !== expected) {
      report(
        partition.number.span,
        "partition-number",
        `partition number ${partition.number.value} is out of order: expected ${expected} ` +
          "(partitions are numbered 1, 2, 3... without gaps or repeats)",
      )
    }
    if (partition.size === undefined && index < lines.length - 1) {
      report(
        partition.span,
        "partition-size-missing",
        `partition ${partition.number.value} has no SIZE, so it takes the rest of the disk; ` +
          "only the last partition may omit SIZE",
      )
    }
    if (table === "mbr" && index >= 4) {
      report(
        partition.span,
        "mbr-partition-count",
        "an MBR partition table holds at most 4 partitions (use GPT for more)",
      )
    }
    if (table === "mbr") {
      for (const flag of partition.flags?.value ?? []) {
        if (flag.value === "bios_grub") {
          report(
            flag.span,
            "mbr-bios-grub",
            "the bios_grub flag needs a GPT partition table, and this disk is MBR",
          )
        }
      }
    }
  })

  const partitions = lines.map((line) => line.instruction).filter(isPartition)
  if (disk === undefined || partitions.length !== lines.length) return
  if (!Number.isSafeInteger(disk.size.bytes) || disk.size.bytes === 0) return
  const gpt = disk.table.value === "gpt"
  const usable = usableBytes(disk.size.bytes, disk.table.value)
  const reserved = reservedSpace(disk.table.value)
  const diskName = `${disk.size.amount} ${disk.size.unit} ${gpt ? "GPT" : "MBR"} disk`
  let needed = 0
  for (const partition of partitions) {
    if (partition.size === undefined) {
      if (usable - needed < MiB) {
        report(
          partition.span,
          "disk-full",
          `partition ${partition.number.value} has no SIZE and there is no space left for it ` +
            `on the ${diskName} (${reserved})`,
        )
        return
      }
      break
    }
    if (!Number.isSafeInteger(partition.size.bytes)) return
    needed += partition.size.bytes
    if (needed > usable) {
      report(
        partition.size.span,
        "partition-too-large",
        `partition ${partition.number.value} does not fit: the partitions up to it need ` +
          `${mebibytes(needed)} but the ${diskName} has ${mebibytes(usable)} usable (${reserved})`,
      )
      return
    }
  }
  checkMinimumSizes(diskLayout(disk, partitions).partitions, partitions, report)
}

/** The smallest filesystems the helper VM's mkfs tools create. */
const MINIMUM_SIZES: Partial<Record<string, number>> = { xfs: 300 * MiB }

const checkMinimumSizes = (
  layouts: ReadonlyArray<PartitionLayout>,
  partitions: ReadonlyArray<Ast.Partition>,
  report: Report,
) => {
  partitions.forEach((partition, index) => {
    const fs = partition.format?.fs
    const minimum = fs && MINIMUM_SIZES[fs.value]
    const bytes = (layouts[index]?.sizeSectors ?? 0) * SECTOR
    if (fs && minimum !== undefined && bytes < minimum) {
      report(
        partition.size?.span ?? fs.span,
        "filesystem-too-small",
        `partition ${partition.number.value} is ${mebibytes(bytes)}, but mkfs.${fs.value} ` +
          `refuses filesystems smaller than ${mebibytes(minimum)}`,
      )
    }
  })
}
