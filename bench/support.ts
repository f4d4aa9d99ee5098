/**
 * What the benchmark scripts share: timing host tools, medians, and the table of figures with
 * their targets.
 */

export const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`
export const now = () => performance.now()
export const median = (values: ReadonlyArray<number>) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN

export const log = (line: string) => console.log(line)
export const loadAverage = () => Deno.loadavg()[0]!.toFixed(2)

/** Run a host tool; it must succeed. */
export const tool = async (
  argv: readonly [string, ...Array<string>],
  env?: Record<string, string>,
) => {
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    ...(env === undefined ? {} : { env }),
  }).output()
  if (!output.success) {
    const text = new TextDecoder()
    throw new Error(
      `${argv.join(" ")} exited with status ${output.code}: ${text.decode(output.stderr)}`,
    )
  }
}

/** Wall time of `argv`, which must succeed. */
export const timed = async (
  argv: readonly [string, ...Array<string>],
  env?: Record<string, string>,
) => {
  const started = now()
  await tool(argv, env)
  return now() - started
}

export interface Row {
  readonly figure: string
  readonly value: string
  readonly target?: string
  readonly met?: boolean
}

/** A ratio transient / libguestfs against its ceiling. */
export const ratioRow = (figure: string, ratio: number, ceiling: number): Row => ({
  figure,
  value: `${ratio.toFixed(2)}x`,
  target: `<= ${ceiling}x`,
  met: ratio <= ceiling,
})

export const printTable = (rows: ReadonlyArray<Row>) => {
  const cells = rows.map((row) => [
    row.figure,
    row.value,
    row.target ?? "",
    row.met === undefined ? "" : row.met ? "yes" : "NO",
  ])
  const header = ["figure", "value", "target", "met"]
  const widths = header.map((title, i) =>
    Math.max(title.length, ...cells.map((cell) => cell[i]!.length))
  )
  const line = (cell: ReadonlyArray<string>) =>
    `| ${cell.map((text, i) => text.padEnd(widths[i]!)).join(" | ")} |`
  log(line(header))
  log(`|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`)
  for (const cell of cells) log(line(cell))
}
