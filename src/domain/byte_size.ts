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

const SIZE_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  B: 1,
  K: 2 ** 10,
  KB: 2 ** 10,
  KIB: 2 ** 10,
  M: 2 ** 20,
  MB: 2 ** 20,
  MIB: 2 ** 20,
  G: 2 ** 30,
  GB: 2 ** 30,
  GIB: 2 ** 30,
  T: 2 ** 40,
  TB: 2 ** 40,
  TIB: 2 ** 40,
}

/**
 * A size as a user writes it on the command line or in the environment: `10G`, `512MB`,
 * `1.5GiB`, `4096` (bytes). Units are powers of 1024, as in the Imagefile. Undefined when the
 * text is not a size.
 */
export const parseByteSize = (text: string): number | undefined => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text)
  if (!match) return undefined
  const unit = SIZE_UNITS[match[2]!.toUpperCase()]
  return unit === undefined ? undefined : Math.round(Number(match[1]) * unit)
}
