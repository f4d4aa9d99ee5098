/**
 * Faults, as an unlucky user meets them: transient stopped by a signal at an awkward moment,
 * killed outright, its QEMU frozen, its store on a full filesystem. Each case checks the exit
 * status, the message, and that nothing is left: no QEMU of that build, no helper-VM temp
 * directory, no working file in the store or the build directory (matched by the build's own
 * pid and paths, never by name alone).
 */
import assert from "node:assert/strict"
import { makeBusyboxRootfs } from "../../examples/hello/make_rootfs.ts"
import { coldBuildArgs, MAIN } from "../support/run_transient.ts"
import { runHost } from "../support/host_tool.ts"
import { qemuProcessesWith } from "../support/host.ts"
import { once } from "../support/once.ts"
import { mountTmpfs, tmpfsProblem, unmountTmpfs } from "../support/tmpfs.ts"

const work = await Deno.makeTempDir({ prefix: "transient-e2e-faults-" })
const rootfs = once(async () => {
  await makeBusyboxRootfs(`${work}/rootfs.tar.gz`)
  return `${work}/rootfs.tar.gz`
})

/** A build directory holding `imagefile` and the busybox rootfs. */
const context = async (name: string, imagefile: string) => {
  const dir = `${work}/${name}`
  await Deno.mkdir(dir, { recursive: true })
  await Deno.writeTextFile(`${dir}/Imagefile`, imagefile)
  await Deno.copyFile(await rootfs(), `${dir}/rootfs.tar.gz`)
  return dir
}

const imagefile = (...run: Array<string>) =>
  ["FROM scratch", "DISK 256 MB GPT", "PARTITION 1 FORMAT ext4 MOUNT /", "ADD rootfs.tar.gz /"]
    .concat(run.map((command) => `RUN ${command}`)).join("\n") + "\n"

/** A RUN that never ends by itself, with a busy child in the background. */
const BUSY = "echo busy-started; (while :; do :; done) & while :; do :; done"

/** A transient build running in the background, its output collected as it comes. */
class Running {
  readonly child: Deno.ChildProcess
  output = ""
  readonly #done: Promise<void>

  constructor(args: ReadonlyArray<string>, env: Record<string, string>) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, ...args],
      // Each store has its own step cache beside it, unless the test names one.
      env: { NO_COLOR: "1", TRANSIENT_CACHE_DIR: `${env.TRANSIENT_IMAGE_BACKEND}.cache`, ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn()
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) this.output += text
    }
    this.#done = Promise.all([collect(this.child.stdout), collect(this.child.stderr)]).then(
      () => {},
    )
  }

  /** Send `signal`, unless the process has ended already. */
  signal(signal: Deno.Signal): void {
    try {
      this.child.kill(signal)
    } catch (error) {
      if (!(error instanceof TypeError)) throw error
    }
  }

  /** Wait until the output matches `pattern` (at most `ms`). */
  async waitFor(pattern: RegExp, ms = 120_000): Promise<number> {
    const deadline = performance.now() + ms
    while (!pattern.test(this.output)) {
      if (performance.now() > deadline) throw new Error(`no ${pattern} in:\n${this.output}`)
      await sleep(50)
    }
    return performance.now()
  }

  /** The exit status, and how long after `since` it came. */
  async exit(since: number): Promise<{ code: number; seconds: number }> {
    const status = await this.child.status
    await this.#done
    return { code: status.code, seconds: (performance.now() - since) / 1000 }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The QEMU processes of the transient process `pid` (its helper VM's directory names it). */
const qemuOf = (pid: number) => qemuProcessesWith(`/transient-vm-${pid}-`)

/** The temp directories of `pid`'s helper VMs. */
const vmDirsOf = async (pid: number) =>
  (await Array.fromAsync(Deno.readDir(tmpDir()))).map((entry) => entry.name)
    .filter((name) => name.startsWith(`transient-vm-${pid}-`))

const tmpDir = () => Deno.env.get("TMPDIR") || "/tmp"

/** What a build left in its build directory and store besides what was there before. */
const leftovers = async (dir: string, store: string) => {
  const names = (path: string) =>
    Array.fromAsync(Deno.readDir(path)).then(
      (entries) => entries.map((entry) => entry.name),
      () => [] as Array<string>,
    )
  return [
    ...(await names(dir)).filter((name) => name.startsWith(".")),
    ...(await names(`${store}/.working`)).filter((name) => !name.endsWith(".lock")),
    ...(await names(`${store}.cache/work`)),
  ]
}

/** Assert that nothing of the build of `pid` is left. */
const assertClean = async (pid: number, dir: string, store: string) => {
  assert.deepEqual(await qemuOf(pid), [], "no QEMU of the build is left")
  assert.deepEqual(await vmDirsOf(pid), [], "no helper-VM temp directory is left")
  assert.deepEqual(await leftovers(dir, store), [], "no working file is left")
}

/** A --local build of `name` whose RUN is BUSY, started and waited for until that RUN runs. */
const busyBuild = async (name: string) => {
  const dir = await context(name, imagefile(BUSY))
  const store = `${work}/store-${name}`
  const build = new Running(coldBuildArgs(dir, "--local", "--name", name), {
    TRANSIENT_IMAGE_BACKEND: store,
  })
  await build.waitFor(/^busy-started$/m)
  return { dir, store, build }
}

/** The pid of the QEMU of `build`, which must be running. */
const qemuPidOf = async (build: Running) => {
  const [qemu] = await qemuOf(build.child.pid)
  assert.ok(qemu, "the build's QEMU runs")
  return Number(qemu)
}

for (const [signal, status] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  Deno.test(`${signal} during a busy RUN ends the build within 10 s with status ${status}`, async () => {
    const { dir, store, build } = await busyBuild(`busy-${signal}`)
    await sleep(500)
    build.signal(signal)
    const sent = performance.now()
    // A second Ctrl-C during clean-up must not cut it short.
    if (signal === "SIGINT") {
      await sleep(300)
      build.signal("SIGINT")
    }
    const { code, seconds } = await build.exit(sent)
    assert.equal(code, status, build.output)
    assert.ok(seconds < 10, `stopped after ${seconds.toFixed(1)} s`)
    assert.match(build.output, signal === "SIGINT" ? /^Interrupted$/m : /^Terminated$/m)
    await assertClean(build.child.pid, dir, store)
    assert.equal(await Deno.stat(`${dir}/busy-${signal}.qcow2`).catch(() => undefined), undefined)
  })
}

Deno.test("SIGINT with QEMU frozen (SIGSTOP) still ends the build within 10 s", async () => {
  const { dir, store, build } = await busyBuild("frozen")
  const qemu = await qemuPidOf(build)
  Deno.kill(qemu, "SIGSTOP")
  await sleep(500)
  build.signal("SIGINT")
  const { code, seconds } = await build.exit(performance.now())
  assert.equal(code, 130, build.output)
  assert.ok(seconds < 10, `stopped after ${seconds.toFixed(1)} s`)
  await assertClean(build.child.pid, dir, store)
})

Deno.test("QEMU killed mid-RUN: the error says so, with the signal and the console's end", async () => {
  const { dir, store, build } = await busyBuild("qemu-killed")
  const qemu = await qemuPidOf(build)
  Deno.kill(qemu, "SIGKILL")
  const { code } = await build.exit(performance.now())
  assert.equal(code, 1, build.output)
  assert.match(
    build.output,
    /^error: Helper VM failed to keep running: QEMU exited with signal SIGKILL$/m,
  )
  assert.match(build.output, /^ {2}\| transient-init: .*starting agent/m)
  await assertClean(build.child.pid, dir, store)
})

Deno.test("a frozen QEMU (SIGSTOP) is given up on by itself, with a clear error", async () => {
  const { dir, store, build } = await busyBuild("frozen-alone")
  const qemu = await qemuPidOf(build)
  Deno.kill(qemu, "SIGSTOP")
  const { code, seconds } = await build.exit(performance.now())
  assert.equal(code, 1, build.output)
  assert.match(
    build.output,
    /^error: Helper VM failed to keep running: QEMU has not answered for 15s/m,
  )
  assert.ok(seconds < 30, `gave up after ${seconds.toFixed(1)} s`)
  await assertClean(build.child.pid, dir, store)
})

Deno.test("SIGKILL of transient mid-RUN: its QEMU exits by itself, the next run sweeps the rest", async () => {
  const dir = await context("killed", imagefile(BUSY))
  const store = `${work}/store-killed`
  const env = { TRANSIENT_IMAGE_BACKEND: store, TRANSIENT_CACHE_DIR: `${store}.cache` }
  const build = new Running(coldBuildArgs(dir, "--local", "--name", "killed"), env)
  await build.waitFor(/^busy-started$/m)
  const pid = build.child.pid
  assert.notDeepEqual(await qemuOf(pid), [])
  build.signal("SIGKILL")
  const killed = performance.now()
  await build.exit(killed)
  while ((await qemuOf(pid)).length > 0 && performance.now() - killed < 5000) await sleep(100)
  assert.deepEqual(await qemuOf(pid), [], "QEMU exited within 5 s of its transient")
  assert.notDeepEqual(await leftovers(dir, store), [], "the killed build left its working copy")

  // The next build in the same place removes what the killed one could not.
  await Deno.writeTextFile(`${dir}/Imagefile`, imagefile("true"))
  const next = await runHost(
    [Deno.execPath(), "run", "-A", MAIN, ...coldBuildArgs(dir, "--local", "--name", "killed")],
    { env: { NO_COLOR: "1", ...env } },
  )
  assert.equal(next.code, 0, next.stderr)
  await assertClean(pid, dir, store)
})

Deno.test("SIGINT swept across the last step and publication: the status says whether the image was published", async () => {
  const dir = await context("sweep", imagefile("echo last-step"))
  const store = `${work}/store-sweep`
  const env = { TRANSIENT_IMAGE_BACKEND: store, TRANSIENT_CACHE_DIR: `${store}.cache` }
  const outcomes: Array<string> = []
  for (const delayMs of [0, 250, 400, 450, 500, 550, 600, 800]) {
    const build = new Running(coldBuildArgs(dir, "--name", "sweep", "--force"), env)
    await build.waitFor(/^Step 5\/5 : /m)
    await sleep(delayMs)
    build.signal("SIGINT")
    const { code, seconds } = await build.exit(performance.now())
    const listed = await runHost([Deno.execPath(), "run", "-A", MAIN, "image", "ls", "--json"], {
      env: { NO_COLOR: "1", ...env },
    })
    const published = (JSON.parse(listed.stdout) as Array<{ name: string }>)
      .some((image) => image.name === "sweep")
    outcomes.push(`${delayMs} ms: ${code}${published ? " published" : ""}`)
    assert.ok(seconds < 10, `stopped after ${seconds.toFixed(1)} s`)
    assert.equal(code, published ? 0 : 130, `${delayMs} ms after the last step: ${build.output}`)
    await assertClean(build.child.pid, dir, store)
    if (published) {
      const removed = await runHost([Deno.execPath(), "run", "-A", MAIN, "image", "rm", "sweep"], {
        env: { NO_COLOR: "1", ...env },
      })
      assert.equal(removed.code, 0, removed.stderr)
    }
  }
  console.log(`SIGINT after the last step started: ${outcomes.join(", ")}`)
})

const noTmpfs = await tmpfsProblem("the full-filesystem case")

Deno.test({
  name:
    "a store on a full filesystem: a clear error naming the file, within seconds, and nothing left",
  ignore: noTmpfs !== undefined,
  fn: async () => {
    const mounted = await mountTmpfs(48)
    assert.ok("dir" in mounted, "a 48 MiB tmpfs was mounted")
    const small = mounted.dir
    try {
      const dir = await context("full", imagefile("dd if=/dev/urandom of=/big bs=1M count=120"))
      const store = `${small}/store`
      const build = new Running(coldBuildArgs(dir, "--name", "full"), {
        TRANSIENT_IMAGE_BACKEND: store,
        TRANSIENT_CACHE_DIR: `${store}.cache`,
      })
      const started = await build.waitFor(/^Step 5\/5 : /m)
      const { code, seconds } = await build.exit(started)
      assert.equal(code, 1, build.output)
      assert.match(
        build.output,
        /^error: Helper VM failed to keep running: the host filesystem holding .*\/store\.cache\/work\/.*\.qcow2 is full/m,
      )
      assert.ok(seconds < 60, `failed after ${seconds.toFixed(1)} s`)
      await assertClean(build.child.pid, dir, store)
    } finally {
      await unmountTmpfs(small)
    }
  },
})

globalThis.addEventListener("unload", () => {
  Deno.removeSync(work, { recursive: true })
})
