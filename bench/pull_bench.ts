/**
 * `image pull` of a 2 GiB raw image compressed with xz, served from 127.0.0.1, against the shell
 * pipeline that does the same (`curl | xz -dc > raw && qemu-img convert -O qcow2`), alternated in
 * one run; the phases of the pull as its progress reported them. No VM is started.
 *
 *   deno task bench:pull   (part of `deno task bench`)
 *
 * The image is made once (a few minutes of `xz -1`) and kept in
 * `$XDG_CACHE_HOME/transient-bench` (else `~/.cache/transient-bench`).
 */
import { transient } from "../tests/support/run_transient.ts"
import * as Bench from "./support.ts"

/** Pull runs of each kind, alternated: the pipeline, then `image pull`. */
const PULLS = 3
/** The most `image pull` may take, as a multiple of the pipeline's time. */
const TARGET = 1.2

const GiB = 1024 ** 3
const PULL_FIXTURE = "pull-2g-v1.raw.xz"

/**
 * A 2 GiB raw disk (an MBR signature, then 1 GiB of data that xz compresses about 3:1, then
 * zeros), xz-compressed in one block as `xz -1` makes it, kept in `cache` for later runs: making
 * it takes minutes. The data is the same on every machine (a fixed-seed generator).
 */
const pullFixture = async (cache: string): Promise<string> => {
  const file = `${cache}/${PULL_FIXTURE}`
  if (await Deno.stat(file).then(() => true, () => false)) return file
  await Deno.mkdir(cache, { recursive: true })
  const raw = `${cache}/pull-2g.raw`
  const out = await Deno.open(raw, { write: true, create: true, truncate: true })
  try {
    let seed = 0x2545f491
    const random = () => {
      seed ^= seed << 13
      seed ^= seed >>> 17
      seed ^= seed << 5
      return seed >>> 0
    }
    const block = new Uint8Array(4 * 1024 ** 2)
    const text = new TextEncoder().encode("transient bench data, line ".repeat(2048))
    const mbr = new Uint8Array(512)
    mbr.set([0x55, 0xaa], 510)
    await out.write(mbr)
    await out.seek(1024 ** 2, Deno.SeekMode.Start)
    for (let written = 0; written < GiB; written += block.length) {
      for (let at = 0; at < block.length; at += 65536) {
        // A quarter of each 64 KiB is noise, the rest text with a counter in it.
        const words = new Uint32Array(block.buffer, at, 4096)
        for (let i = 0; i < words.length; i++) words[i] = random()
        block.set(text.subarray(0, 49152), at + 16384)
        block.set(new TextEncoder().encode(String(written + at)), at + 16384)
      }
      await out.write(block)
    }
    await out.truncate(2 * GiB)
  } finally {
    out.close()
  }
  await Bench.tool(["xz", "-1", "-T1", "-f", raw])
  await Deno.rename(`${raw}.xz`, file)
  return file
}

/** `file` served on 127.0.0.1, with its length, until `close`. */
const serveFile = (file: string) => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async () => {
    const opened = await Deno.open(file)
    const { size } = await opened.stat()
    return new Response(opened.readable, { headers: { "content-length": String(size) } })
  })
  return {
    url: `http://127.0.0.1:${server.addr.port}/image.raw.xz`,
    close: () => server.shutdown(),
  }
}

interface PullFigures {
  readonly pipeline: ReadonlyArray<number>
  readonly pull: ReadonlyArray<number>
  /** The progress of the last `image pull`: `[phase, seconds]` from each progress's end. */
  readonly phases: ReadonlyArray<string>
}

/**
 * The 2 GiB xz image from 127.0.0.1, alternated: `curl | xz -dc > raw && qemu-img convert`, then
 * `transient image pull` into an empty store.
 */
const pullRuns = async (work: string, fixture: string): Promise<PullFigures> => {
  const served = serveFile(fixture)
  const pipeline: Array<number> = []
  const pull: Array<number> = []
  let phases: ReadonlyArray<string> = []
  try {
    for (let i = 0; i < PULLS; i++) {
      const dir = await Deno.makeTempDir({ dir: work, prefix: "pull-" })
      pipeline.push(
        await Bench.timed([
          "bash",
          "-c",
          'set -o pipefail; curl -sf "$1" | xz -dc > "$2/raw" && qemu-img convert -O qcow2 "$2/raw" "$2/out.qcow2"',
          "pipeline",
          served.url,
          dir,
        ]),
      )
      await Deno.remove(dir, { recursive: true })
      const store = await Deno.makeTempDir({ dir: work, prefix: "pull-store-" })
      const started = Bench.now()
      const result = await transient(
        ["image", "pull", "--progress", "json", `big,http=${served.url}`],
        { env: { TRANSIENT_IMAGE_BACKEND: store } },
      )
      pull.push(Bench.now() - started)
      if (result.code !== 0) throw new Error(`image pull failed:\n${result.stderr}${result.stdout}`)
      phases = result.stdout.split("\n").filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((event) => event.event === "progress" && event.done === true)
        .map((event) => `${event.phase} ${Bench.seconds(Number(event.durationMs))}`)
      await Deno.remove(store, { recursive: true })
      Bench.log(
        `pull ${i + 1}/${PULLS}: pipeline ${Bench.seconds(pipeline.at(-1)!)}, image pull ${
          Bench.seconds(pull.at(-1)!)
        } (${phases.join(", ")})`,
      )
    }
  } finally {
    await served.close()
  }
  return { pipeline, pull, phases }
}

const main = async () => {
  const work = await Deno.makeTempDir({ prefix: "transient-bench-pull-" })
  try {
    const rows: Array<Bench.Row> = []
    const cacheHome = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME")}/.cache`
    const fixture = await pullFixture(`${cacheHome}/transient-bench`)
    const pulls = await pullRuns(work, fixture)
    const pipelineMs = Bench.median(pulls.pipeline)
    const pullMs = Bench.median(pulls.pull)
    rows.push(
      {
        figure: `shell pipeline: curl, xz -dc, qemu-img convert (median of ${PULLS})`,
        value: Bench.seconds(pipelineMs),
      },
      { figure: `image pull, 2 GiB raw as xz (median of ${PULLS})`, value: Bench.seconds(pullMs) },
      Bench.ratioRow("  image pull / pipeline", pullMs / pipelineMs, TARGET),
      { figure: "  its phases (the last pull)", value: pulls.phases.join(", ") },
    )

    Bench.printTable(rows)
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {})
  }
}

if (import.meta.main) await main()
