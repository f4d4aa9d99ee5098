/**
 * Push and pull of a 1 GiB image (random data: nothing to gain from holes or compression)
 * through Debian's docker-registry on 127.0.0.1, against skopeo copying the same image the same
 * way in the same run: wall time, MiB/s and the peak RSS of each process (GNU time's %M).
 * Every push goes to a registry started empty for it, so no blob is skipped and skopeo mounts
 * nothing. Medians of RUNS. Then the build cache: the FROM-scratch build of the e2e tests built
 * cold with `--cache-to`, again on an empty local cache with `--cache-from` (goal ≤ 0.1× the cold
 * build), and the bytes the registry gains from a second `--cache-to` after only the last step
 * changed (goal: that step's layer and the map).
 *
 *   deno run -A bench/registry_bench.ts   (part of `deno task bench`; needs docker-registry,
 *   skopeo and GNU time: scripts/setup.sh installs the first two, `apt-get install time`)
 */
import {
  MAIN,
  offlineBuildArgs,
  pullImage,
  pushImage,
  tcgBuildArgs,
  transient,
} from "../tests/support/run_transient.ts"
import { startDockerRegistry } from "../tests/support/docker_registry.ts"
import { tool } from "../tests/support/host.ts"
import { writeScratchContext } from "../tests/support/scratch_context.ts"
import { median } from "./support.ts"

const RUNS = 3
const SIZE_MIB = Number(Deno.env.get("TRANSIENT_BENCH_REGISTRY_MIB") ?? 1024)
const RSS_LIMIT_MB = 250

const has = async (program: string) =>
  (await new Deno.Command("sh", { args: ["-c", `command -v ${program}`], stdout: "null" }).output())
    .success

for (const program of ["docker-registry", "skopeo", "/usr/bin/time"]) {
  if (!(await has(program))) {
    console.log(`registry bench skipped: ${program} is not installed`)
    Deno.exit(0)
  }
}

const work = await Deno.makeTempDir({ prefix: "transient-bench-registry-" })

/**
 * Run argv under GNU time: seconds and peak RSS in MB. The disk's dirty pages are written out
 * first, so that no run pays for the writes of the one before it.
 */
const timed = async (argv: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  await new Deno.Command("sync").output()
  const report = `${work}/time-${crypto.randomUUID()}`
  const output = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%e %M", "-o", report, ...argv],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output()
  if (!output.success) {
    throw new Error(`${argv.join(" ")} failed: ${new TextDecoder().decode(output.stderr)}`)
  }
  const [seconds = "", rss = ""] = (await Deno.readTextFile(report)).trim().split(/\s+/).slice(-2)
  return { seconds: Number(seconds), rssMB: Number(rss) / 1024 }
}

/** `transient ARGS --progress plain`, run under GNU time. */
const timedTransient = (...args: ReadonlyArray<string>) =>
  timed([Deno.execPath(), "run", "-A", MAIN, ...args, "--progress", "plain"])

/**
 * Build `context` cold with `--cache-to`, then on an empty local cache with `--cache-from`, then
 * with its Imagefile changed by `change` (only its last step): the times, and what the registry
 * gained from the second `--cache-to`.
 */
const cacheBench = async (
  label: string,
  context: string,
  network: boolean,
  change: (imagefile: string) => string,
) => {
  const cacheRegistry = await startDockerRegistry(work)
  const cacheDir = await Deno.makeTempDir({ dir: work, prefix: "step-cache-" })
  const cacheRef = `${cacheRegistry.host}/bench/cache:main`
  const buildEnv = { TRANSIENT_CACHE_DIR: cacheDir }
  const buildWith = async (name: string, ...extra: ReadonlyArray<string>) => {
    await new Deno.Command("sync").output()
    const started = performance.now()
    const buildArgs = network ? tcgBuildArgs : offlineBuildArgs
    const outcome = await transient(
      buildArgs(context, "--local", "--force", "--name", name, ...extra),
      { env: buildEnv },
    )
    if (outcome.code !== 0) throw new Error(outcome.stderr)
    return { seconds: (performance.now() - started) / 1000, stdout: outcome.stdout }
  }
  const storageBytes = async () => {
    const du = await new Deno.Command("du", { args: ["-sb", cacheRegistry.storage] }).output()
    return Number(new TextDecoder().decode(du.stdout).split(/\s+/)[0])
  }
  const prune = () => transient(["cache", "prune", "--all"], { env: buildEnv })
  const cold = await buildWith("cold", "--cache-to", cacheRef)
  await prune()
  const fromRegistry = await buildWith("warm", "--cache-from", cacheRef)
  const served =
    fromRegistry.stdout.split("\n").filter((line) => line.startsWith(" ---> Using cache (from "))
      .length
  const imagefile = `${context}/Imagefile`
  await Deno.writeTextFile(imagefile, change(await Deno.readTextFile(imagefile)))
  await prune()
  const before = await storageBytes()
  const changed = await buildWith("changed", "--cache-from", cacheRef, "--cache-to", cacheRef)
  const grown = (await storageBytes()) - before
  const listed = (await transient(["cache", "ls", "--json"], { env: buildEnv })).stdout
  const layers = JSON.parse(listed) as Array<{ text: string; sizeBytes: number }>
  const changedLayer = layers.find((layer) => layer.text.includes("echo changed"))
  await cacheRegistry.stop()
  const ratio = fromRegistry.seconds / cold.seconds
  console.log(`Registry build cache (${label}):`)
  console.log(`  cold build with --cache-to          ${cold.seconds.toFixed(2)} s`)
  console.log(
    `  empty local cache, --cache-from     ${fromRegistry.seconds.toFixed(2)} s ` +
      `(${served} steps from the registry)`,
  )
  console.log(
    `  ${ratio.toFixed(3)}× the cold build (target ≤ 0.1×: ${ratio <= 0.1 ? "yes" : "no"})`,
  )
  console.log(
    `  last step changed (${changed.seconds.toFixed(2)} s): the registry grew by ${grown} bytes; ` +
      `that step's layer takes ${changedLayer?.sizeBytes ?? "?"} bytes on disk`,
  )
}

try {
  const raw = `${work}/disk.raw`
  const image = `${work}/disk.qcow2`
  await tool("dd", "if=/dev/urandom", `of=${raw}`, "bs=1M", `count=${SIZE_MIB}`, "status=none")
  await tool("qemu-img", "convert", "-O", "qcow2", raw, image)
  await Deno.remove(raw)
  const store = `${work}/store`
  const put = await pullImage(`disk,file=${image}`, store)
  if (put.code !== 0) throw new Error(put.stderr)
  const bytes = (await Deno.stat(image)).size
  const mib = bytes / 1024 / 1024

  // The image as skopeo will push it: a `dir:` copy of our containerDisk.
  const seed = await startDockerRegistry(work)
  await pushImage("disk", `${seed.host}/bench/disk:1`, store)
  const skopeoDir = `${work}/skopeo-dir`
  await tool(
    "skopeo",
    "copy",
    "--src-tls-verify=false",
    `docker://${seed.host}/bench/disk:1`,
    `dir:${skopeoDir}`,
  )
  await seed.stop()

  const ours = {
    push: [] as Array<number>,
    pull: [] as Array<number>,
    pushRss: [] as Array<number>,
    pullRss: [] as Array<number>,
  }
  const theirs = {
    push: [] as Array<number>,
    pull: [] as Array<number>,
    pushRss: [] as Array<number>,
    pullRss: [] as Array<number>,
  }
  for (let run = 0; run < RUNS; run++) {
    const a = await startDockerRegistry(work)
    const pushed = await timedTransient(
      "image",
      "push",
      "disk",
      `${a.host}/bench/disk:1`,
      "--image-backend",
      store,
    )
    ours.push.push(pushed.seconds)
    ours.pushRss.push(pushed.rssMB)
    const pullStore = `${work}/pull-${run}`
    const pulled = await timedTransient(
      "image",
      "pull",
      `copy,oci=${a.host}/bench/disk:1`,
      "--image-backend",
      pullStore,
    )
    ours.pull.push(pulled.seconds)
    ours.pullRss.push(pulled.rssMB)
    await Deno.remove(pullStore, { recursive: true })
    const pullDir = `${work}/skopeo-pull-${run}`
    const skopeoPulled = await timed([
      "skopeo",
      "copy",
      "--src-tls-verify=false",
      `docker://${a.host}/bench/disk:1`,
      `dir:${pullDir}`,
    ])
    theirs.pull.push(skopeoPulled.seconds)
    theirs.pullRss.push(skopeoPulled.rssMB)
    await Deno.remove(pullDir, { recursive: true })
    await a.stop()
    const b = await startDockerRegistry(work)
    const skopeoPushed = await timed([
      "skopeo",
      "copy",
      "--dest-tls-verify=false",
      `dir:${skopeoDir}`,
      `docker://${b.host}/bench/disk:1`,
    ])
    theirs.push.push(skopeoPushed.seconds)
    theirs.pushRss.push(skopeoPushed.rssMB)
    await b.stop()
  }
  const line = (what: string, seconds: number, rss: number) =>
    `  ${what.padEnd(22)} ${seconds.toFixed(2).padStart(6)} s  ${
      (mib / seconds).toFixed(0).padStart(5)
    } MiB/s  RSS ${rss.toFixed(0).padStart(4)} MB`
  console.log(
    `Registry push and pull of ${
      mib.toFixed(0)
    } MiB (median of ${RUNS}, loopback docker-registry):`,
  )
  console.log(line("transient image push", median(ours.push), median(ours.pushRss)))
  console.log(line("skopeo copy dir: → reg", median(theirs.push), median(theirs.pushRss)))
  console.log(line("transient image pull", median(ours.pull), median(ours.pullRss)))
  console.log(line("skopeo copy reg → dir:", median(theirs.pull), median(theirs.pullRss)))
  const verdict = (ok: boolean) => (ok ? "yes" : "no")
  const pushRatio = median(ours.push) / median(theirs.push)
  const pullRatio = median(ours.pull) / median(theirs.pull)
  console.log(
    `  push ${pushRatio.toFixed(2)}× skopeo's time (target ≤ 1.0×: ${verdict(pushRatio <= 1)})`,
  )
  console.log(
    `  pull ${pullRatio.toFixed(2)}× skopeo's time (target ≤ 1.0×: ${verdict(pullRatio <= 1)})`,
  )
  const rss = Math.max(median(ours.pushRss), median(ours.pullRss))
  console.log(
    `  peak RSS ${rss.toFixed(0)} MB (target < ${RSS_LIMIT_MB} MB: ${verdict(rss < RSS_LIMIT_MB)})`,
  )

  // The build cache: the e2e build, and with TRANSIENT_BENCH_DEBIAN=1 examples/debian-bootable
  // (about 15 minutes under TCG; it needs Debian's mirror and the example's rootfs.tar.gz).
  const scratch = `${work}/context`
  await writeScratchContext(scratch)
  await cacheBench(
    "the e2e FROM-scratch build",
    scratch,
    false,
    (text) => text.replace(/RUN .*$/m, (run) => `${run} && echo changed > /changed`),
  )
  if (Deno.env.get("TRANSIENT_BENCH_DEBIAN") === "1") {
    const example = new URL("../examples/debian-bootable/", import.meta.url).pathname
    const debian = `${work}/debian`
    await tool("cp", "-r", example, debian)
    await cacheBench(
      "examples/debian-bootable",
      debian,
      true,
      (text) =>
        text.replace(
          "RUN passwd --delete root",
          "RUN passwd --delete root && echo changed > /changed",
        ),
    )
  }
} finally {
  await Deno.remove(work, { recursive: true })
}
