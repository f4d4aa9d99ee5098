/**
 * The one-line summary `transient check` prints for a valid Imagefile.
 */
import type { Imagefile, Partition, Size } from "./ast.ts"

const sizeText = (size: Size): string => `${size.amount} ${size.unit === "MB" ? "MiB" : "GiB"}`

const plural = (count: number, word: string): string => `${count} ${word}${count === 1 ? "" : "s"}`

/**
 * E.g. `Imagefile: 7 instructions, FROM scratch, DISK 2 GiB GPT with 2 partitions (/ on 2)`,
 * or `Imagefile: 3 instructions, FROM alpine, 2 RUN`.
 */
export const summarizeImagefile = (imagefile: Imagefile): string => {
  const instructions = imagefile.instructions
  const parts = [`${imagefile.file}: ${plural(instructions.length, "instruction")}`]
  const from = instructions.find((instruction) => instruction._tag === "From")
  if (from !== undefined) parts.push(`FROM ${from.image.value}`)
  const disk = instructions.find((instruction) => instruction._tag === "Disk")
  if (disk !== undefined) {
    const partitions = instructions.filter((i): i is Partition => i._tag === "Partition")
    const mounts = partitions.flatMap((partition) =>
      partition.mount === undefined ? [] : [`${partition.mount.value} on ${partition.number.value}`]
    )
    parts.push(
      `DISK ${sizeText(disk.size)} ${disk.table.value.toUpperCase()} with ` +
        plural(partitions.length, "partition") +
        (mounts.length === 0 ? "" : ` (${mounts.join(", ")})`),
    )
  }
  const steps = ["Copy", "Add", "Run", "Inspect"].flatMap((tag) => {
    const count = instructions.filter((instruction) => instruction._tag === tag).length
    return count === 0 ? [] : [`${count} ${tag.toUpperCase()}`]
  })
  if (steps.length > 0) parts.push(steps.join(", "))
  return parts.join(", ")
}
