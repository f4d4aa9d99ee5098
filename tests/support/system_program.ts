/**
 * A program's absolute path in the system's directories: tests run in parallel in one process,
 * and some replace PATH for a while (tests/host/oci_test.ts), so a lookup by name can miss.
 */
const SYSTEM_DIRECTORIES = [
  "/usr/local/sbin",
  "/usr/local/bin",
  "/usr/sbin",
  "/usr/bin",
  "/sbin",
  "/bin",
]

export const systemProgram = (name: string): string => {
  for (const directory of SYSTEM_DIRECTORIES) {
    try {
      if (Deno.statSync(`${directory}/${name}`).isFile) return `${directory}/${name}`
    } catch {
      // Not there.
    }
  }
  return name
}
