/**
 * `image export` of a 4 GiB qcow2 with 1 GiB of random data, per format, against the
 * `qemu-img convert` a user would type for that format (for an OVA: the streamOptimized VMDK
 * alone, so the tar and its digests are what the ratio adds). Twenty-five runs of each (five of
 * the formats that compress), in alternating order after one of each not counted (whichever runs
 * first pays for the blocks the run before freed), medians compared. No VM is started.
 *
 *   deno task bench:export [FORMAT…]   (part of `deno task bench`; all formats by default)
 *
 * The files are in /dev/shm where there is one: what is measured is the conversion, not the
 * host disk's stalls. The export runs in this process (the use case on the live disk tools,
 * qemu-img's meter read as the command line reads it), so the figure is the export's, not Deno's
 * start-up. Each run starts with no dirty pages (`sync` first, so that no run pays for writing
 * back the one before it) and is timed as a user waits for it, until the command returns. The
 * OVA is synced before it is renamed, which the plain convert is not.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { writeExport } from "../src/app/export_image.ts"
import { convertArgv, convertTarget, EXPORT_FORMATS } from "../src/domain/export_format.ts"
import { DiskImagesQemu } from "../src/layers/qemu/disk_images_qemu.ts"
import { ReporterMemory, ReportLog } from "../src/layers/memory/reporter_memory.ts"
import * as Bench from "./support.ts"

const MiB = 1024 * 1024
/** The most an export may take, as a multiple of the plain qemu-img convert. */
const TARGET = 1.1
/**
 * Runs of each command per format. A sub-second conversion varies by ±50 ms from run to run,
 * even in memory, for either command: twenty-five runs give a median that holds still. The
 * compressing formats take tens of seconds, where such noise weighs little.
 */
const runsOf = (format: string) => format === "vmdk" || format === "ova" ? 5 : 25

/** A 4 GiB qcow2 whose first GiB is random (incompressible, so no format gets it for free). */
const makeSource = async (work: string) => {
  const random = `${work}/random.raw`
  await Bench.tool(["dd", "if=/dev/urandom", `of=${random}`, "bs=1M", "count=1024", "status=none"])
  await Bench.tool(["truncate", "-s", String(4096 * MiB), random])
  const source = `${work}/source.qcow2`
  await Bench.tool(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", random, source])
  await Deno.remove(random)
  return source
}

/** Read `path` to its end, keeping nothing. */
const readThrough = async (path: string) => {
  using file = await Deno.open(path)
  const buffer = new Uint8Array(4 * MiB)
  while ((await file.read(buffer)) !== null) continue
}

const live = Layer.mergeAll(
  DiskImagesQemu,
  ReporterMemory(new ReportLog()),
).pipe(Layer.provideMerge(NodeContext.layer))

/** The time of `work`, started with no dirty pages in the page cache. */
const cleanStartMs = async (work: () => Promise<unknown>) => {
  await Bench.tool(["sync"])
  const started = Bench.now()
  await work()
  return Bench.now() - started
}

const exportMs = (source: string, path: string, format: typeof EXPORT_FORMATS[number]) =>
  cleanStartMs(() =>
    Effect.runPromise(
      writeExport(source, { path, format, machine: { cpus: 2, memoryMiB: 1024 } }).pipe(
        Effect.provide(live),
      ),
    )
  )

const main = async () => {
  // In memory when there is room: this machine's disk stalls writes for half a second at random
  // (the same shell command shows it), more than a sub-second conversion takes.
  const shm = await Deno.stat("/dev/shm").then((info) => info.isDirectory, () => false)
  const work = await Deno.makeTempDir({
    prefix: "transient-bench-export-",
    ...(shm ? { dir: "/dev/shm" } : {}),
  })
  try {
    const source = await makeSource(work)
    // Read once, so that the first run does not pay alone for reading it from the disk.
    await readThrough(source)
    const rows: Array<Bench.Row> = []
    const asked = Deno.args.length === 0 ? undefined : new Set(Deno.args)
    const formats = EXPORT_FORMATS.filter((format) =>
      format !== "qcow2" && (asked === undefined || asked.has(format))
    )
    for (const format of formats) {
      // What a user would type: the format's own options, no meter.
      const typed = async () => {
        const path = `${work}/typed.out`
        const target = convertTarget(format)
        const ms = await cleanStartMs(() =>
          Bench.tool([
            "qemu-img",
            ...convertArgv({ from: source, to: path, target, fromFormat: "qcow2" }),
          ])
        )
        await Deno.remove(path)
        return ms
      }
      const exported = async () => {
        const path = `${work}/ours.${format}`
        const ms = await exportMs(source, path, format)
        await Deno.remove(path)
        return ms
      }
      // One of each first, not counted: the first write of a format pays for what came before.
      await typed()
      await exported()
      const userRuns: Array<number> = []
      const ourRuns: Array<number> = []
      for (let run = 0; run < runsOf(format); run++) {
        if (run % 2 === 0) {
          userRuns.push(await typed())
          ourRuns.push(await exported())
        } else {
          ourRuns.push(await exported())
          userRuns.push(await typed())
        }
      }
      const [userMs, oursMs] = [Bench.median(userRuns), Bench.median(ourRuns)]
      Bench.log(
        `${format}: qemu-img ${userRuns.map(Bench.seconds).join(" ")}, ` +
          `export ${ourRuns.map(Bench.seconds).join(" ")} (load ${Bench.loadAverage()})`,
      )
      rows.push(
        {
          figure: `${format}: qemu-img convert / export (medians)`,
          value: `${Bench.seconds(userMs)} / ${Bench.seconds(oursMs)}`,
        },
        Bench.ratioRow(`  ${format}: export / qemu-img convert`, oursMs / userMs, TARGET),
      )
    }
    Bench.printTable(rows)
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {})
  }
}

if (import.meta.main) await main()
