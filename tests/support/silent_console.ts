/** A console for ReporterConsole that prints nothing: for tests that look only at results. */
import type { ConsoleSink } from "../../src/layers/reporter/reporter_console.ts"

export const silentConsole: ConsoleSink = {
  stdout: () => {},
  stderr: () => {},
  isTerminal: false,
  columns: () => 80,
  now: () => performance.now(),
}
