/**
 * The helper VM under TCG, in one run: boot-to-agent, `FROM base` + `RUN true`, a FROM-scratch
 * build, COPY throughput of a 1 GiB file, the step cache and, where libguestfs is installed, the
 * same work by virt-customize and virt-make-fs, as ratios. Every target is printed with whether it
 * is met (pulls: pull_bench.ts). Builds go through the CLI, as a user runs them.
 *
 *   deno task bench:vm [--cpus N]   (part of `deno task bench`; needs `deno task guest` first)
 *
 * These are multi-second runs, each timed once: `Deno.bench` would repeat them, so this is a
 * script. The machine's load average is printed with the figures: other work on the host's
 * cores slows the emulated guest directly.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { makeBuildVmQemu } from "../src/layers/qemu/build_vm_qemu.ts"
import { findGuestArtifacts } from "../src/layers/qemu/guest_artifacts.ts"
import { TerminalDeno } from "../src/layers/terminal_deno.ts"
import { BuildVm } from "../src/services/build_vm.ts"
import { qemuProcessesWith } from "../tests/support/host.ts"
import { writeScratchContext } from "../tests/support/scratch_context.ts"
import { transient } from "../tests/support/run_transient.ts"
import { warningsReporter } from "../tests/support/warnings_reporter.ts"
import {
  loadAverage,
  log,
  median,
  now,
  printTable,
  ratioRow,
  type Row,
  seconds,
  timed,
  tool,
} from "./support.ts"

/** `--cpus N` for the helper VM of every scenario; without it, the CLI's default. */
const CPUS: number | undefined = (() => {
  const at = Deno.args.indexOf("--cpus")
  if (at === -1) return undefined
  const value = Number(Deno.args[at + 1])
  if (!Number.isInteger(value) || value < 1) throw new Error("usage: vm_bench.ts [--cpus N]")
  return value
})()
/** The CLI's default, so that the in-process boot matches the builds. */
const MEMORY_MIB = 1024
const BOOTS = 5
const BIG_FILE_MIB = 1024
/** TCG, and its overlays under `work`, so that the check for stray QEMU processes sees its own. */
const libguestfsEnv = (work: string) => ({
  LIBGUESTFS_BACKEND: "direct",
  LIBGUESTFS_BACKEND_SETTINGS: "force_tcg",
  LIBGUESTFS_TMPDIR: work,
})

/** The targets: boot, ratios to libguestfs, COPY throughput. */
const TARGETS = { boot: 1.5, fromBase: 0.2, scratch: 0.4, copyMiBs: 200 } as const

const onPath = async (program: string): Promise<boolean> => {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir !== "" && (await Deno.stat(`${dir}/${program}`).catch(() => undefined))?.isFile) {
      return true
    }
  }
  return false
}

// --- transient --------------------------------------------------------------------------------

const silentReporter = warningsReporter((message) => console.error(`warning: ${message}`))

interface BootFigures {
  /** From `boot` to the session being ready (the agent said hello). */
  readonly ready: number
  /** From the end of the session to QEMU's exit (unmount, sync, power off). */
  readonly shutdown: number
}

/**
 * Start the helper VM on an empty disk and stop it cleanly, as a build does: booted, or with
 * `stateDirectory`, restored from the state saved there (the first start saves it).
 */
const bootOnce = async (work: string, stateDirectory?: string): Promise<BootFigures> => {
  const dir = await Deno.makeTempDir({ dir: work, prefix: "boot-" })
  await tool(["qemu-img", "create", "-q", "-f", "qcow2", `${dir}/disk.qcow2`, "64M"])
  await Deno.mkdir(`${dir}/context`)
  const options = stateDirectory === undefined ? {} : { stateDirectory }
  const layer = makeBuildVmQemu(findGuestArtifacts(), options).pipe(
    Layer.provideMerge(Layer.mergeAll(silentReporter, NodeContext.layer, TerminalDeno)),
  )
  let ready = 0
  const started = now()
  await Effect.runPromise(
    Effect.flatMap(BuildVm, (vm) =>
      Effect.scoped(
        vm.boot({
          disk: `${dir}/disk.qcow2`,
          context: `${dir}/context`,
          network: false,
          accel: "tcg",
          ...(CPUS === undefined ? {} : { cpus: CPUS }),
          memoryMiB: MEMORY_MIB,
          bootTimeoutSeconds: 60,
        }).pipe(Effect.tap(() => Effect.sync(() => void (ready = now())))),
      )).pipe(Effect.provide(layer)),
  )
  const stopped = now()
  await Deno.remove(dir, { recursive: true })
  return { ready: ready - started, shutdown: stopped - ready }
}

interface BuildFigures {
  readonly wall: number
  /** `Step N/M  12.3 s  TEXT` lines of the build's summary, when it prints them. */
  readonly steps: ReadonlyArray<string>
  /** Each layer's snapshot, in ms (` ---> layer KEY (snapshot N ms)`). */
  readonly snapshots: ReadonlyArray<number>
  /** The flattening of the layers into the image, in ms. */
  readonly flattenMs?: number
  /** How many steps the step cache served. */
  readonly cached: number
}

/**
 * Wall time of `transient build --accel tcg --no-network ARGS`, which must succeed; cold (with
 * `--no-cache`) unless `useCache`.
 */
const transientBuild = async (
  args: ReadonlyArray<string>,
  env: Record<string, string>,
  useCache = false,
): Promise<BuildFigures> => {
  const started = now()
  const result = await transient(
    [
      "build",
      ...(useCache ? [] : ["--no-cache"]),
      "--accel",
      "tcg",
      "--no-network",
      ...(CPUS === undefined ? [] : ["--cpus", String(CPUS)]),
      "--progress",
      "plain",
      ...args,
    ],
    { env },
  )
  const wall = now() - started
  if (result.code !== 0) {
    throw new Error(`transient build ${args.join(" ")} failed:\n${result.stderr}${result.stdout}`)
  }
  const steps = result.stdout.split("\n").filter((line) => /^\s+Step \d+\/\d+\s/.test(line))
  const snapshots = [...result.stdout.matchAll(/^ ---> layer \w+ \(snapshot (\d+) ms\)$/gm)]
    .map((match) => Number(match[1]))
  const flatten = /^ ---> image flattened from its layers in (\d+) ms$/m.exec(result.stdout)?.[1]
  return {
    wall,
    steps: steps.map((line) => line.trim()),
    snapshots,
    ...(flatten === undefined ? {} : { flattenMs: Number(flatten) }),
    cached: result.stdout.split("\n").filter((line) => line === " ---> Using cache").length,
  }
}

const writeImagefile = (dir: string, name: string, lines: ReadonlyArray<string>) =>
  Deno.writeTextFile(`${dir}/${name}`, lines.join("\n") + "\n")

/** The e2e FROM-scratch build: its context, with the rootfs, a file and a directory. */

// --- libguestfs -------------------------------------------------------------------------------

/**
 * The scratch build's input for virt-make-fs, which takes one directory or archive: the rootfs
 * with the file and the directory already in place, as a tar.gz it extracts in its appliance.
 */
const makeFsInput = async (scratch: string, work: string) => {
  const tree = `${work}/make-fs-tree`
  await Deno.mkdir(`${tree}/usr/local/bin`, { recursive: true })
  await tool(["tar", "-C", tree, "-xzf", `${scratch}/rootfs.tar.gz`])
  await tool(["cp", "-a", `${scratch}/tool.sh`, `${tree}/usr/local/bin/tool`])
  await tool(["cp", "-a", `${scratch}/conf`, `${tree}/etc/app`])
  const archive = `${work}/make-fs-input.tar.gz`
  await tool([
    "tar",
    "-C",
    tree,
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "-czf",
    archive,
    ".",
  ])
  await Deno.remove(tree, { recursive: true })
  return archive
}

// --- the run ----------------------------------------------------------------------------------

const main = async () => {
  const work = await Deno.makeTempDir({ prefix: "transient-bench-" })
  const store = `${work}/store`
  const env = { TRANSIENT_IMAGE_BACKEND: store, TRANSIENT_CACHE_DIR: `${work}/cache` }
  const rows: Array<Row> = []
  try {
    log(
      `transient helper VM under TCG: ${
        CPUS ?? "default (1 under TCG)"
      } vCPUs, ${MEMORY_MIB} MiB, no network; ` +
        `${navigator.hardwareConcurrency} host CPUs, load average ${loadAverage()}`,
    )

    // 1. The helper VM ready for a build (its disk and context attached), then a clean
    // shutdown: booted, and restored from the state the first start with a state saved.
    const starts = async (what: string, stateDirectory?: string) => {
      const figures: Array<BootFigures> = []
      for (let i = 1; i <= BOOTS; i++) {
        figures.push(await bootOnce(work, stateDirectory))
        log(
          `${what} ${i}/${BOOTS}: ready in ${seconds(figures[i - 1]!.ready)}, stopped in ${
            seconds(figures[i - 1]!.shutdown)
          }`,
        )
      }
      return figures
    }
    const boots = await starts("boot")
    // Where the builds below find it: they restore it, as every build after a cache's first.
    const states = `${env.TRANSIENT_CACHE_DIR}/helper-vm`
    const saving = await bootOnce(work, states)
    log(`boot + state saved: ready in ${seconds(saving.ready)}`)
    const restores = await starts("restore", states)
    const coldReady = median(boots.map((b) => b.ready))
    const bootReady = median(restores.map((b) => b.ready))
    const list = (figures: ReadonlyArray<BootFigures>) =>
      figures.map((b) => (b.ready / 1000).toFixed(2)).join(", ")
    rows.push({
      figure: `boot to agent, cold (median of ${BOOTS})`,
      value: `${seconds(coldReady)} (${list(boots)})`,
    })
    rows.push({ figure: "  first boot of a cache, its state saved", value: seconds(saving.ready) })
    rows.push({
      figure: `restore to agent, what builds pay (median of ${BOOTS})`,
      value: `${seconds(bootReady)} (${list(restores)})`,
      target: `<= ${TARGETS.boot} s`,
      met: bootReady <= TARGETS.boot * 1000,
    })
    rows.push({
      figure: "clean shutdown (median)",
      value: seconds(median([...boots, ...restores].map((b) => b.shutdown))),
    })

    // 2. The FROM-scratch build, whose image is then the base.
    const scratch = `${work}/scratch`
    await Deno.mkdir(scratch)
    await writeScratchContext(scratch)
    const scratchBuild = await transientBuild(["--local", "--name", "base", scratch], env)
    log(`FROM scratch build: ${seconds(scratchBuild.wall)}`)
    for (const step of scratchBuild.steps) log(`  ${step}`)

    // 3. FROM base + RUN true.
    await tool(
      [
        Deno.execPath(),
        "run",
        "-A",
        new URL("../main.ts", import.meta.url).pathname,
        "image",
        "pull",
        `base,file=${scratch}/base.qcow2`,
        "--progress",
        "plain",
      ],
      { ...env, NO_COLOR: "1" },
    )
    const derived = `${work}/derived`
    await Deno.mkdir(derived)
    await writeImagefile(derived, "Imagefile", ["FROM base", "RUN true"])
    const derivedBuild = await transientBuild(["--name", "derived", derived], env)
    log(`FROM base + RUN true: ${seconds(derivedBuild.wall)}`)
    for (const step of derivedBuild.steps) log(`  ${step}`)

    // 4. COPY of a 1 GiB file, less the same build without it.
    const big = `${work}/big`
    await Deno.mkdir(big)
    await tool([
      "dd",
      "if=/dev/urandom",
      `of=${big}/big.bin`,
      "bs=1M",
      `count=${BIG_FILE_MIB}`,
      "status=none",
    ])
    const disk = ["FROM scratch", "DISK 2 GB GPT", "PARTITION 1 FORMAT ext4 MOUNT /"]
    await writeImagefile(big, "Imagefile.baseline", disk)
    await writeImagefile(big, "Imagefile.copy", [...disk, "COPY big.bin /big.bin"])
    const baseline = await transientBuild(
      ["--local", "--name", "baseline", "--file", `${big}/Imagefile.baseline`, big],
      env,
    )
    await Deno.remove(`${big}/baseline.qcow2`)
    log(`2 GB disk, no COPY: ${seconds(baseline.wall)}`)
    const copy = await transientBuild(
      ["--local", "--name", "copy", "--file", `${big}/Imagefile.copy`, big],
      env,
    )
    await Deno.remove(`${big}/copy.qcow2`)
    log(`2 GB disk + COPY 1 GiB: ${seconds(copy.wall)}`)
    for (const step of copy.steps) log(`  ${step}`)
    const copyMs = copy.wall - baseline.wall

    rows.push({ figure: "FROM base + RUN true", value: seconds(derivedBuild.wall) })
    rows.push({ figure: "FROM scratch build (8 steps)", value: seconds(scratchBuild.wall) })
    rows.push({ figure: "2 GB disk, no COPY (baseline)", value: seconds(baseline.wall) })
    rows.push({ figure: "2 GB disk + COPY 1 GiB", value: seconds(copy.wall) })
    const copyRate = BIG_FILE_MIB / (copyMs / 1000)
    rows.push({
      figure: "COPY 1 GiB (difference)",
      value: `${seconds(copyMs)} = ${copyRate.toFixed(0)} MiB/s`,
      target: `>= ${TARGETS.copyMiBs} MiB/s`,
      met: copyRate >= TARGETS.copyMiBs,
    })

    // 5. The step cache.
    const rebuild = await transientBuild(["--local", "--name", "base-again", scratch], env, true)
    log(`unchanged rebuild of the FROM scratch build: ${seconds(rebuild.wall)}`)
    if (rebuild.cached !== scratchBuild.steps.length) {
      throw new Error(`the unchanged rebuild ran steps: ${rebuild.steps.join("; ")}`)
    }
    const scratchText = await Deno.readTextFile(`${scratch}/Imagefile`)
    await Deno.writeTextFile(`${scratch}/Imagefile`, scratchText.replace(/RUN .*\n$/, "RUN true\n"))
    const lastRun = await transientBuild(["--local", "--name", "base-last", scratch], env, true)
    const lastStep = lastRun.steps[lastRun.steps.length - 1] ?? ""
    log(`last RUN changed: ${seconds(lastRun.wall)} (${lastStep})`)
    await Deno.writeTextFile(`${scratch}/Imagefile`, scratchText)

    const chain = `${work}/chain`
    await Deno.mkdir(chain)
    const prelude = ["FROM scratch", "DISK 256 MB GPT", "PARTITION 1 FORMAT ext4 MOUNT /"]
    const runs = Array.from({ length: 40 }, (_, i) => `echo ${i} > /step-${i}`)
    await writeImagefile(chain, "Imagefile.steps", [
      ...prelude,
      "ADD rootfs.tar.gz /",
      ...runs.map((run) => `RUN ${run}`),
    ])
    await writeImagefile(chain, "Imagefile.one", [
      ...prelude,
      "ADD rootfs.tar.gz /",
      `RUN ${runs.join(" && ")}`,
    ])
    await Deno.copyFile(`${scratch}/rootfs.tar.gz`, `${chain}/rootfs.tar.gz`)
    const fortySteps = await transientBuild(
      ["--local", "--name", "steps", "--file", `${chain}/Imagefile.steps`, chain],
      env,
    )
    const oneStep = await transientBuild(
      ["--local", "--name", "one", "--file", `${chain}/Imagefile.one`, chain],
      env,
    )
    const snapshot = median(fortySteps.snapshots)
    log(
      `40 RUN steps: ${seconds(fortySteps.wall)}; the same commands in one RUN: ${
        seconds(oneStep.wall)
      }; snapshots ${fortySteps.snapshots.join(", ")} ms`,
    )
    rows.push(
      { figure: "unchanged rebuild (FROM scratch build)", value: seconds(rebuild.wall) },
      ratioRow("  unchanged rebuild / cold build", rebuild.wall / scratchBuild.wall, 0.15),
      {
        figure: "last RUN changed",
        value: seconds(lastRun.wall),
        target: `<= restore + step + 1 s = ${
          seconds(bootReady + (Number(/(\d+\.\d+) s/.exec(lastStep)?.[1] ?? 0) * 1000) + 1000)
        }`,
        met: lastRun.wall <=
          bootReady + Number(/(\d+\.\d+) s/.exec(lastStep)?.[1] ?? 0) * 1000 + 1000,
      },
      {
        figure: `snapshot per step (median of ${fortySteps.snapshots.length})`,
        value: `${snapshot} ms`,
        target: "<= 150 ms",
        met: snapshot <= 150,
      },
      { figure: "40 RUN steps, each a layer (cold)", value: seconds(fortySteps.wall) },
      { figure: "  the same 40 commands in one RUN", value: seconds(oneStep.wall) },
      {
        figure: "  flattening the 42-layer chain",
        value: fortySteps.flattenMs === undefined ? "?" : `${fortySteps.flattenMs} ms`,
      },
    )

    // 6. The same work by libguestfs.
    const missing = []
    for (const program of ["virt-customize", "virt-make-fs", "guestfish"]) {
      if (!(await onPath(program))) missing.push(program)
    }
    if (missing.length > 0) {
      const why = `${missing.join(", ")} not on PATH (apt-get install libguestfs-tools)`
      log(`libguestfs comparison skipped: ${why}`)
      rows.push({ figure: "libguestfs comparison", value: `skipped: ${why}` })
    } else {
      const guestfsEnv = libguestfsEnv(work)
      // The appliance is built once and cached; build it outside the timings.
      const warm = await timed(["guestfish", "-a", "/dev/null", "run"], guestfsEnv)
      log(`libguestfs appliance warm-up (not counted): ${seconds(warm)}`)

      const copyOfBase = `${work}/virt-customize.qcow2`
      await Deno.copyFile(`${scratch}/base.qcow2`, copyOfBase)
      const customize = await timed(
        ["virt-customize", "-a", copyOfBase, "--no-network", "--run-command", "true"],
        guestfsEnv,
      )
      log(`virt-customize --run-command true: ${seconds(customize)}`)

      const input = await makeFsInput(scratch, work)
      const makeFs = await timed(
        [
          "virt-make-fs",
          "--partition=gpt",
          "--type=ext4",
          "--size=256M",
          "--format=qcow2",
          input,
          `${work}/virt-make-fs.qcow2`,
        ],
        guestfsEnv,
      )
      log(`virt-make-fs (rootfs + file + directory, one tar.gz): ${seconds(makeFs)}`)

      rows.push(
        { figure: "virt-customize --run-command true", value: seconds(customize) },
        ratioRow(
          "  FROM base + RUN true / virt-customize",
          derivedBuild.wall / customize,
          TARGETS.fromBase,
        ),
        { figure: "virt-make-fs --partition=gpt --type=ext4", value: seconds(makeFs) },
        ratioRow(
          "  FROM scratch build / virt-make-fs",
          scratchBuild.wall / makeFs,
          TARGETS.scratch,
        ),
      )
    }

    log("")
    rows.push({ figure: "load average at the end (1 min)", value: loadAverage() })
    printTable(rows)
    const left = await qemuProcessesWith(work)
    if (left.length > 0) throw new Error(`QEMU processes were left running: ${left.join(", ")}`)
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {})
  }
}

if (import.meta.main) await main()
