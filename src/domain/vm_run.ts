/**
 * `transient run`'s vocabulary: what a run is asked to do and how it ended.
 */

/** A TCP port of the host forwarded to one of the guest (user-mode network). */
export interface PortForward {
  readonly host: number
  readonly guest: number
}

/** How a run ended. */
export type RunOutcome =
  | { readonly _tag: "Matched"; readonly line: string }
  | { readonly _tag: "PoweredOff" }
  | { readonly _tag: "Detached" }

const PORT = /^(\d{1,5}):(\d{1,5})$/

/** `HOST:GUEST`, two TCP ports, or why not. */
export const parsePortForward = (text: string): PortForward | string => {
  const match = PORT.exec(text)
  const [host, guest] = [Number(match?.[1]), Number(match?.[2])]
  return match && host >= 1 && host <= 65535 && guest >= 1 && guest <= 65535
    ? { host, guest }
    : `--forward takes HOST:GUEST, two TCP ports (got '${text}')`
}
