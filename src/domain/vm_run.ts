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

const VNC = /^(?:(\d{1,3}(?:\.\d{1,3}){3}|localhost|\[[0-9a-fA-F:]+\]):)?(\d{1,2})$/

/** `--vnc`: `N` or `ADDRESS:N` (display N, TCP port 5900+N), as QEMU's `-vnc` takes it. */
export const parseVncDisplay = (text: string): string | { readonly problem: string } => {
  const match = VNC.exec(text)
  if (match === null) {
    return { problem: `--vnc takes N or ADDRESS:N, a display number (got '${text}')` }
  }
  return `${match[1] ?? "127.0.0.1"}:${match[2]}`
}
