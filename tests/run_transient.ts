/**
 * Run transient as a user does: `main.ts` in a subprocess, its exit status and output captured.
 */

export const ROOT = new URL("../", import.meta.url).pathname
export const MAIN = `${ROOT}main.ts`

export interface Outcome {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

export const transient = async (
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: Record<string, string> } = {},
): Promise<Outcome> => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: options.cwd ?? ROOT,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    env: { NO_COLOR: "1", ...options.env },
  }).output()
  const decoder = new TextDecoder()
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  }
}
