/**
 * How a transfer's progress reads: a one-line bar for terminals, a sentence for logs. Pure.
 */
import { formatBytes } from "../../domain/byte_size.ts"

export interface ProgressSnapshot {
  readonly label: string
  readonly bytes: number
  readonly total: number | undefined
  readonly elapsedMs: number
}

/** `m:ss` (or `h:mm:ss`), for ETAs and durations. */
export const formatDuration = (ms: number): string => {
  const seconds = Math.max(0, Math.round(ms / 1000))
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  const s = String(seconds % 60).padStart(2, "0")
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`
}

/** Bytes per second so far; undefined until there is enough time to say. */
export const rateOf = (snapshot: ProgressSnapshot): number | undefined =>
  snapshot.elapsedMs >= 200 ? snapshot.bytes / (snapshot.elapsedMs / 1000) : undefined

const etaOf = (snapshot: ProgressSnapshot): number | undefined => {
  const rate = rateOf(snapshot)
  if (rate === undefined || rate === 0 || snapshot.total === undefined) return undefined
  return Math.max(0, (snapshot.total - snapshot.bytes) / rate) * 1000
}

export const fractionOf = (snapshot: ProgressSnapshot): number | undefined =>
  snapshot.total === undefined || snapshot.total <= 0
    ? undefined
    : Math.min(1, snapshot.bytes / snapshot.total)

/** `label [#####.....]  45%  12.30 MiB / 27.00 MiB  5.10 MiB/s  ETA 0:03`, fitted to `columns`. */
export const renderBar = (snapshot: ProgressSnapshot, columns: number): string => {
  const rate = rateOf(snapshot)
  const eta = etaOf(snapshot)
  const fraction = fractionOf(snapshot)
  const amount = snapshot.total === undefined
    ? formatBytes(snapshot.bytes)
    : `${formatBytes(snapshot.bytes)} / ${formatBytes(snapshot.total)}`
  const tail = [
    fraction === undefined ? undefined : `${Math.floor(fraction * 100)}%`.padStart(4),
    amount,
    rate === undefined ? undefined : `${formatBytes(rate)}/s`,
    eta === undefined ? undefined : `ETA ${formatDuration(eta)}`,
  ].filter((part) => part !== undefined).join("  ")
  const room = columns - snapshot.label.length - tail.length - 5
  if (fraction === undefined || room < 10) return `${snapshot.label}  ${tail}`.slice(0, columns - 1)
  const width = Math.min(40, room)
  const filled = Math.round(fraction * width)
  return `${snapshot.label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${tail}`
}

/** `label: 45% (12.30 MiB of 27.00 MiB, 5.10 MiB/s, ETA 0:03)` */
export const renderLine = (snapshot: ProgressSnapshot): string => {
  const rate = rateOf(snapshot)
  const eta = etaOf(snapshot)
  const fraction = fractionOf(snapshot)
  const details = [
    snapshot.total === undefined
      ? formatBytes(snapshot.bytes)
      : `${formatBytes(snapshot.bytes)} of ${formatBytes(snapshot.total)}`,
    rate === undefined ? undefined : `${formatBytes(rate)}/s`,
    eta === undefined ? undefined : `ETA ${formatDuration(eta)}`,
  ].filter((part) => part !== undefined).join(", ")
  return fraction === undefined
    ? `${snapshot.label}: ${details}`
    : `${snapshot.label}: ${Math.floor(fraction * 100)}% (${details})`
}

/** `label: 27.00 MiB in 0:05 (5.10 MiB/s)`, when a transfer ends (however it ends). */
export const renderDone = (snapshot: ProgressSnapshot): string => {
  const rate = rateOf(snapshot)
  const speed = rate === undefined ? "" : ` (${formatBytes(rate)}/s)`
  return `${snapshot.label}: ${formatBytes(snapshot.bytes)} in ${
    formatDuration(snapshot.elapsedMs)
  }${speed}`
}
