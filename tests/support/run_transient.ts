/**
 * Run transient as a user does: `main.ts` in a subprocess, its exit status and output captured.
 */
import { type Outcome, runHost } from "./host_tool.ts"

export type { Outcome }

export const ROOT = new URL("../../", import.meta.url).pathname
export const MAIN = `${ROOT}main.ts`

export const transient = (
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: Record<string, string> } = {},
): Promise<Outcome> =>
  runHost([Deno.execPath(), "run", "-A", MAIN, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { NO_COLOR: "1", ...options.env },
  })

/**
 * `build --no-cache --accel tcg --no-network --progress plain EXTRA DIR`: every step of the
 * build runs, also when an earlier build kept them.
 */
export const coldBuildArgs = (dir: string, ...extra: Array<string>): Array<string> => [
  "build",
  "--no-cache",
  "--accel",
  "tcg",
  "--no-network",
  "--progress",
  "plain",
  ...extra,
  dir,
]
