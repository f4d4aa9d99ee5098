/**
 * The Debian mirror this machine's apt uses, which the Debian examples' tests build from, and
 * why it cannot be used, if it cannot (those tests are then skipped, saying so).
 */
import { configuredMirror } from "../../examples/debian-bootable/make_rootfs.ts"

export const mirror = await configuredMirror()

export const mirrorProblem: string | undefined = await fetch(
  `${mirror}/dists/bookworm/InRelease`,
  { method: "HEAD", signal: AbortSignal.timeout(15_000) },
).then(
  (response) => response.ok ? undefined : `${mirror} answers ${response.status}`,
  (error) => `${mirror} is unreachable (${error instanceof Error ? error.message : error})`,
)
