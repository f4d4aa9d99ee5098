/**
 * Makes `rootfs.tar.gz`: a Debian bookworm root filesystem from `mmdebstrap --variant=minbase`,
 * fetched from the mirror apt uses on this machine. No root needed: see `bootstrap`.
 *
 * The archive is cached in `${XDG_CACHE_HOME:-~/.cache}/transient/examples/`, keyed by the
 * suite and the mirror: the second run only copies it.
 *
 *   deno run -A examples/debian-bootable/make_rootfs.ts [OUTPUT] [--mirror URL] [--include A,B]
 */

const SUITE = "bookworm"
const FALLBACK_MIRROR = "http://deb.debian.org/debian"

const decoder = new TextDecoder()

const run = async (argv: [string, ...Array<string>], what: string): Promise<void> => {
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output()
  if (!output.success) {
    const log = (decoder.decode(output.stdout) + decoder.decode(output.stderr)).trim()
    throw new Error(
      `${what} failed (exit status ${output.code}):\n${log.split("\n").slice(-20).join("\n")}`,
    )
  }
}

/** Debian's archive as this machine's apt reaches it: the first `URIs:` or `deb` line for it. */
export const configuredMirror = async (): Promise<string> => {
  const parts = await Array.fromAsync(Deno.readDir("/etc/apt/sources.list.d")).catch(() => [])
  const files = [
    "/etc/apt/sources.list",
    ...parts.map((entry) => `/etc/apt/sources.list.d/${entry.name}`)
      .filter((file) => file.endsWith(".list") || file.endsWith(".sources")).sort(),
  ]
  for (const file of files) {
    const text = await Deno.readTextFile(file).catch(() => "")
    for (const line of text.split("\n")) {
      const uri = /^\s*(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)/.exec(line)?.[1]
      // The main archive, not debian-security or a third-party repository.
      if (uri && /\/debian\/?$/.test(uri)) return uri.replace(/\/$/, "")
    }
  }
  return FALLBACK_MIRROR
}

/** Where the archive for `mirror` (and the extra packages `include`) is cached. */
export const cachePath = async (
  mirror: string,
  include: ReadonlyArray<string> = [],
): Promise<string> => {
  const base = Deno.env.get("XDG_CACHE_HOME") || `${Deno.env.get("HOME") ?? "/root"}/.cache`
  const keyed = include.length === 0 ? mirror : `${mirror} ${[...include].sort().join(",")}`
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(keyed))
  const key = [...new Uint8Array(digest).slice(0, 6)].map((b) => b.toString(16).padStart(2, "0"))
    .join("")
  return `${base}/transient/examples/debian-${SUITE}-mmdebstrap-${key}.tar.gz`
}

/**
 * mmdebstrap (with the packages `include` too) straight into the archive, without what the
 * image must not keep: the host's name and resolver (mmdebstrap already drops the downloaded
 * packages). Its `auto` mode needs no root: as another user it works in a user namespace
 * (`unshare`), which needs newuidmap (package uidmap) and a range in /etc/subuid and /etc/subgid.
 */
const bootstrap = async (
  mirror: string,
  archive: string,
  include: ReadonlyArray<string>,
): Promise<void> => {
  // mmdebstrap picks the archive's compression from its name.
  const partial = archive.replace(/\.tar\.gz$/, ".partial.tar.gz")
  try {
    await run(
      [
        "mmdebstrap",
        "--mode=auto",
        "--variant=minbase",
        ...(include.length === 0 ? [] : [`--include=${include.join(",")}`]),
        '--customize-hook=rm -f "$1/etc/hostname" "$1/etc/resolv.conf"',
        SUITE,
        partial,
        mirror,
      ],
      "mmdebstrap (is it installed? apt-get install mmdebstrap uidmap)",
    )
    await Deno.rename(partial, archive)
  } finally {
    await Deno.remove(partial).catch(() => {})
  }
}

/**
 * Write the root filesystem archive to `output`, from the cache when it holds one for `mirror`.
 * Returns whether the cache was used.
 */
export const makeDebianRootfs = async (
  output: string,
  mirror?: string,
  include: ReadonlyArray<string> = [],
): Promise<{ readonly cached: boolean; readonly mirror: string }> => {
  const from = mirror ?? await configuredMirror()
  const archive = await cachePath(from, include)
  const cached = await Deno.stat(archive).then(() => true, () => false)
  if (!cached) {
    await Deno.mkdir(archive.slice(0, archive.lastIndexOf("/")), { recursive: true })
    await bootstrap(from, archive, include)
  }
  // A copy, not a symlink: the build context may not point outside BUILD_DIR.
  await Deno.remove(output).catch(() => {})
  await Deno.link(archive, output).catch(() => Deno.copyFile(archive, output))
  return { cached, mirror: from }
}

if (import.meta.main) {
  const args = [...Deno.args]
  const flag = args.indexOf("--mirror")
  const mirror = flag >= 0 ? args.splice(flag, 2)[1] : undefined
  const includeFlag = args.indexOf("--include")
  const include = includeFlag >= 0 ? (args.splice(includeFlag, 2)[1] ?? "").split(",") : []
  const output = args[0] ?? new URL("./rootfs.tar.gz", import.meta.url).pathname
  try {
    const started = performance.now()
    const result = await makeDebianRootfs(output, mirror, include.filter((name) => name !== ""))
    const seconds = ((performance.now() - started) / 1000).toFixed(1)
    console.log(
      `Wrote ${output} (${
        result.cached ? "cached" : `mmdebstrap from ${result.mirror}`
      }, ${seconds} s)`,
    )
  } catch (error) {
    console.error(`error: ${error instanceof Error ? error.message : error}`)
    Deno.exit(1)
  }
}
