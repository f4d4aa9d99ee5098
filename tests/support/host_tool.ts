/** Run a host program (qemu-img, sfdisk, debugfs, transient itself...) with an argument array. */
import assert from "node:assert/strict"

export interface Outcome {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Run `argv` to completion with stdin closed; its exit status and decoded output. */
export const runHost = async (
  argv: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: Record<string, string> } = {},
): Promise<Outcome> => {
  const output = await new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.env === undefined ? {} : { env: options.env }),
  }).output()
  const text = new TextDecoder()
  return {
    code: output.code,
    stdout: text.decode(output.stdout),
    stderr: text.decode(output.stderr),
  }
}

/** Returns the tool's stdout; a non-zero exit fails the test with its stderr. */
export const tool = async (...argv: [string, ...Array<string>]): Promise<string> => {
  const result = await runHost(argv)
  assert.equal(result.code, 0, `${argv.join(" ")}: ${result.stderr}`)
  return result.stdout
}

/** Run `argv` with `input` written to its stdin (else stdin closed); its stdout as bytes. */
export const runBinary = async (
  argv: readonly [string, ...Array<string>],
  input?: Uint8Array,
): Promise<{ readonly code: number; readonly stdout: Uint8Array; readonly stderr: string }> => {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: input ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn()
  if (input) {
    const writer = child.stdin.getWriter()
    await writer.write(input)
    await writer.close()
  }
  const output = await child.output()
  return {
    code: output.code,
    stdout: output.stdout,
    stderr: new TextDecoder().decode(output.stderr),
  }
}
