/**
 * Human-readable byte counts in the original transient's format: `9.77 KiB`, `20.00 GiB`.
 */

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const

/** Two decimals and a binary unit; a unit is used once the count exceeds 1024 of the one below. */
export const formatBytes = (bytes: number): string => {
  let size = bytes
  let unit = 0
  while (size > 1024 && unit < UNITS.length - 1) {
    size /= 1024
    unit += 1
  }
  return `${size.toFixed(2)} ${UNITS[unit]}`
}
