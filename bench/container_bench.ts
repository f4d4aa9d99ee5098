/**
 * `ADD docker://…` of a 300 MB (uncompressed) container image from a local `docker-registry`,
 * against what a root user would script for the same image on the host: `skopeo copy` into an
 * OCI layout, then `umoci unpack`. Alternated in one run; the ADD step's own time (from the
 * build's JSON events) and the whole build's are both shown, and the most memory the transient
 * process held (its RSS, sampled; the helper VM's QEMU is not transient's memory).
 *
 *   deno task bench:container   (part of `deno task bench`)
 *
 * The image is made once (two layers of generated files: many small ones, some large, text and
 * noise) and kept in `$XDG_CACHE_HOME/transient-bench` (else `~/.cache/transient-bench`).
 */
import { startDockerRegistry } from "../tests/support/docker_registry.ts"
import { MAIN } from "../tests/support/run_transient.ts"
import * as Bench from "./support.ts"

/** Runs of each kind, alternated. */
const RUNS = 2
/** The most the ADD may take, as a multiple of skopeo + umoci. */
const TARGET = 1.5
/** The most memory transient's own process may hold. */
const MEMORY_TARGET_MIB = 250

const MiB = 1024 * 1024
const FIXTURE = "container-300m-v1"

/** A generator with a fixed seed: the same image on every machine. */
const generator = (seed: number) => () => {
  seed ^= seed << 13
  seed ^= seed >>> 17
  seed ^= seed << 5
  return seed >>> 0
}

/** The files of one layer under `root`: about `total` bytes, most files small. */
const writeFiles = async (root: string, total: number, seed: number) => {
  const random = generator(seed)
  const text = new TextEncoder().encode("usr/share/doc changelog entry, line of text ".repeat(4096))
  let written = 0
  for (let index = 0; written < total; index++) {
    const dir = `${root}/usr/lib/bench/d${index % 97}`
    await Deno.mkdir(dir, { recursive: true })
    // One file in fifty is large (1-4 MiB); the rest 1-16 KiB.
    const size = index % 50 === 0 ? MiB * (1 + (random() % 4)) : 1024 * (1 + (random() % 16))
    const bytes = new Uint8Array(size)
    for (let at = 0; at < size; at += text.length) bytes.set(text.subarray(0, size - at), at)
    // A third of each file is noise: compressible about 2:1 as a whole, as binaries are.
    const words = new Uint32Array(bytes.buffer, 0, Math.floor(size / 12))
    for (let i = 0; i < words.length; i++) words[i] = random()
    await Deno.writeFile(`${dir}/f${index}`, bytes)
    written += size
  }
}

/** The image, as an OCI layout in the cache: made once. */
const fixture = async (cache: string): Promise<string> => {
  const layout = `${cache}/${FIXTURE}`
  if (await Deno.stat(`${layout}/index.json`).then(() => true, () => false)) return layout
  const work = await Deno.makeTempDir({ prefix: "transient-bench-container-" })
  try {
    const partial = `${cache}/${FIXTURE}.partial`
    await Deno.remove(partial, { recursive: true }).catch(() => {})
    await Bench.tool(["umoci", "init", "--layout", partial])
    await Bench.tool(["umoci", "new", "--image", `${partial}:1`])
    for (const [layer, seed] of [[1, 0x2545f491], [2, 0x1b873593]] as const) {
      const root = `${work}/layer${layer}`
      await writeFiles(root, 150 * MiB, seed)
      await Bench.tool(["tar", "-C", root, "--numeric-owner", "-cf", `${root}.tar`, "."])
      await Bench.tool(["umoci", "raw", "add-layer", "--image", `${partial}:1`, `${root}.tar`])
    }
    await Deno.rename(partial, layout)
    return layout
  } finally {
    await Deno.remove(work, { recursive: true })
  }
}

/** Run `argv`, sampling its RSS (KiB → MiB) every 100 ms: its time and its peak. */
const measured = async (argv: ReadonlyArray<string>) => {
  const started = Bench.now()
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn()
  let peakKiB = 0
  const sampler = setInterval(() => {
    try {
      const status = Deno.readTextFileSync(`/proc/${child.pid}/status`)
      const rss = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0)
      peakKiB = Math.max(peakKiB, rss)
    } catch {
      // Gone.
    }
  }, 100)
  const output = await child.output()
  clearInterval(sampler)
  const ms = Bench.now() - started
  const text = new TextDecoder()
  if (!output.success) {
    throw new Error(`${argv.join(" ")}: ${text.decode(output.stderr).slice(-2000)}`)
  }
  return { ms, peakMiB: peakKiB / 1024, stdout: text.decode(output.stdout) }
}

const main = async () => {
  const cacheHome = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME")}/.cache`
  const layout = await fixture(`${cacheHome}/transient-bench`)
  const work = await Deno.makeTempDir({ prefix: "transient-bench-container-" })
  const registry = await startDockerRegistry(work)
  try {
    const reference = `${registry.host}/bench/files:1`
    await Bench.tool([
      "skopeo",
      "copy",
      "--quiet",
      "--dest-tls-verify=false",
      `oci:${layout}:1`,
      `docker://${reference}`,
    ])
    const context = `${work}/context`
    await Deno.mkdir(context)
    await Deno.writeTextFile(
      `${context}/Imagefile`,
      `FROM scratch\nDISK 2 GB MBR\nPARTITION 1 FORMAT ext4 MOUNT /\nADD docker://${reference} /\n`,
    )
    const env = { TRANSIENT_CACHE_DIR: `${work}/cache` }
    const ours = async () => {
      const run = await measured([
        "env",
        ...Object.entries(env).map(([key, value]) => `${key}=${value}`),
        Deno.execPath(),
        "run",
        "-A",
        MAIN,
        "build",
        "--accel",
        "tcg",
        "--no-network",
        "--no-cache",
        "--plain-http",
        "--progress",
        "json",
        "--local",
        "--force",
        "--name",
        "bench",
        context,
      ])
      const events = run.stdout.split("\n").filter((line) => line.startsWith("{")).map((line) =>
        JSON.parse(line)
      )
      const add = events.find((event) => event.event === "step-end" && event.step === 4)
      return { ...run, addMs: Number(add?.durationMs ?? NaN) }
    }
    const theirs = async () => {
      const oci = `${work}/pulled`
      const bundle = `${work}/bundle`
      const run = await measured([
        "sh",
        "-c",
        'skopeo copy --quiet --src-tls-verify=false "docker://$1" "oci:$2:1" && ' +
        'umoci unpack --image "$2:1" "$3"',
        "bench",
        reference,
        oci,
        bundle,
      ])
      await Deno.remove(oci, { recursive: true })
      await Deno.remove(bundle, { recursive: true })
      return run
    }
    // The deno process that RSS is sampled for is `env`'s exec: the same pid.
    await ours()
    const scripted: Array<number> = []
    const added: Array<number> = []
    const builds: Array<number> = []
    const peaks: Array<number> = []
    for (let run = 0; run < RUNS; run++) {
      const order = run % 2 === 0 ? [theirs, ours] : [ours, theirs]
      for (const next of order) {
        const result = await next()
        if ("addMs" in result) {
          added.push(result.addMs as number)
          builds.push(result.ms)
          peaks.push(result.peakMiB)
        } else {
          scripted.push(result.ms)
        }
      }
      Bench.log(
        `run ${run + 1}: skopeo + umoci ${Bench.seconds(scripted.at(-1)!)}, ADD ${
          Bench.seconds(added.at(-1)!)
        } (build ${Bench.seconds(builds.at(-1)!)}, peak RSS ${peaks.at(-1)!.toFixed(0)} MiB, ` +
          `load ${Bench.loadAverage()})`,
      )
    }
    const [scriptedMs, addMs, buildMs] = [scripted, added, builds].map(Bench.median) as [
      number,
      number,
      number,
    ]
    const peak = Math.max(...peaks)
    Bench.printTable([
      { figure: "skopeo copy + umoci unpack (median)", value: Bench.seconds(scriptedMs) },
      { figure: "ADD docker:// step, under TCG (median)", value: Bench.seconds(addMs) },
      { figure: "whole build (FROM scratch, mkfs, ADD, flatten)", value: Bench.seconds(buildMs) },
      Bench.ratioRow("  ADD / skopeo + umoci", addMs / scriptedMs, TARGET),
      {
        figure: "transient's peak RSS during the build",
        value: `${peak.toFixed(0)} MiB`,
        target: `<= ${MEMORY_TARGET_MIB} MiB`,
        met: peak <= MEMORY_TARGET_MIB,
      },
    ])
  } finally {
    await registry.stop()
    await Deno.remove(work, { recursive: true }).catch(() => {})
  }
}

if (import.meta.main) await main()
