/** Small helpers of the recipe: running programs without a shell, failing loudly, hashing. */

/** The recipe cannot continue: `deno task guest` prints the message and exits non-zero. */
export class RecipeError extends Error {}

/** The recipe cannot continue; a function declaration, so that TypeScript narrows after it. */
export function fail(message: string): never {
  throw new RecipeError(message)
}

export interface RunOptions {
  readonly env?: Record<string, string>
  readonly cwd?: string
  readonly stdin?: Uint8Array
}

/** Run `argv` to completion and return its stdout; a non-zero exit fails with its stderr. */
export const run = async (argv: ReadonlyArray<string>, options: RunOptions = {}): Promise<string> =>
  new TextDecoder().decode(await runBytes(argv, options))

export const runBytes = async (
  argv: ReadonlyArray<string>,
  options: RunOptions = {},
): Promise<Uint8Array> => {
  const [program, ...args] = argv
  if (program === undefined) return fail("nothing to run")
  const child = new Deno.Command(program, {
    args,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  }).spawn()
  // Feed stdin while the output is collected, or a full pipe would block both sides.
  const feeding = options.stdin === undefined ? Promise.resolve() : (async () => {
    const writer = child.stdin.getWriter()
    await writer.write(options.stdin)
    await writer.close()
  })().catch((error) => {
    // A program may stop reading before the end (xz --single-stream); its status decides.
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error
  })
  const [output] = await Promise.all([child.output(), feeding])
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr).trim()
    fail(`${argv.join(" ")} exited with status ${output.code}${stderr ? `: ${stderr}` : ""}`)
  }
  return output.stdout
}

export const sha256Hex = async (bytes: Uint8Array): Promise<string> =>
  Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("")
