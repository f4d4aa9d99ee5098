/**
 * How long a network read may bring nothing before it is given up: one setting,
 * `TRANSIENT_NETWORK_TIMEOUT` (seconds), for the answer to a request and for each read of its
 * body, on registries, HTTP sources and the Vagrant API alike.
 */

/** The environment variable that sets the timeout. */
export const NETWORK_TIMEOUT_VARIABLE = "TRANSIENT_NETWORK_TIMEOUT"

/** Seconds without an answer or a byte before a read is retried or fails, unless set. */
export const DEFAULT_NETWORK_TIMEOUT_SECONDS = 30

/** The timeout in `text` (seconds, a positive number: `30`, `2.5`); undefined when it is none. */
export const parseNetworkTimeout = (text: string): number | undefined => {
  const trimmed = text.trim()
  if (!/^\d+(\.\d+)?$/.test(trimmed)) return undefined
  const seconds = Number(trimmed)
  return seconds > 0 && Number.isFinite(seconds) ? seconds : undefined
}
