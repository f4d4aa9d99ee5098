/**
 * Run transient as a user does: `main.ts` in a subprocess, its exit status and output captured.
 */
import { type Outcome, runHost, tool } from "./host_tool.ts"

export type { Outcome }

export const ROOT = new URL("../../", import.meta.url).pathname
export const MAIN = `${ROOT}main.ts`

export interface TransientOptions {
  readonly cwd?: string
  readonly env?: Record<string, string>
}

export const transient = (
  args: ReadonlyArray<string>,
  options: TransientOptions = {},
): Promise<Outcome> =>
  runHost([Deno.execPath(), "run", "-A", MAIN, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { NO_COLOR: "1", ...options.env },
  })

/** `build --accel tcg --progress plain EXTRA DIR`: a build under TCG, reported line by line. */
export const tcgBuildArgs = (dir: string, ...extra: ReadonlyArray<string>): Array<string> => [
  "build",
  "--accel",
  "tcg",
  "--progress",
  "plain",
  ...extra,
  dir,
]

/** `build --accel tcg --progress plain --no-network EXTRA DIR`: the same, offline. */
export const offlineBuildArgs = (dir: string, ...extra: ReadonlyArray<string>): Array<string> =>
  tcgBuildArgs(dir, "--no-network", ...extra)

/**
 * `build --accel tcg --progress plain --no-network --no-cache EXTRA DIR`: every step of the
 * build runs, also when an earlier build kept them.
 */
export const coldBuildArgs = (dir: string, ...extra: ReadonlyArray<string>): Array<string> =>
  offlineBuildArgs(dir, "--no-cache", ...extra)

/** `image pull SPEC --image-backend STORE`. */
export const pullImage = (spec: string, store: string, options: TransientOptions = {}) =>
  transient(["image", "pull", spec, "--image-backend", store], options)

/** `image push IMAGE REFERENCE [--format FORMAT] --image-backend STORE`. */
export const pushImage = (
  image: string,
  reference: string,
  store: string,
  options: TransientOptions & { readonly format?: "artifact" } = {},
) =>
  transient([
    "image",
    "push",
    image,
    reference,
    ...(options.format === undefined ? [] : ["--format", options.format]),
    "--image-backend",
    store,
  ], options)

/** The last line a command printed: a push's pinned reference, a build's image path. */
export const lastLine = (outcome: Outcome): string => outcome.stdout.trim().split("\n").at(-1) ?? ""

/**
 * A store at `WORK/source-store` holding `disk`, a qcow2 of `sizeMiB` whose `writtenMiB` from
 * 1 MiB on are 0x5a, made by qemu-img and pulled as a user would; the qcow2's path and the store.
 */
export const storeWithDisk = async (work: string, sizeMiB: number, writtenMiB: number) => {
  const imagePath = `${work}/disk.qcow2`
  await tool("qemu-img", "create", "-q", "-f", "qcow2", imagePath, `${sizeMiB}M`)
  await tool("qemu-io", "-c", `write -P 0x5a 1M ${writtenMiB}M`, imagePath)
  const sourceStore = `${work}/source-store`
  const pulled = await pullImage(`disk,file=${imagePath}`, sourceStore)
  if (pulled.code !== 0) throw new Error(`pulling the test disk failed: ${pulled.stderr}`)
  return { imagePath, sourceStore }
}
