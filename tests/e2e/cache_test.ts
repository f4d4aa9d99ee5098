/**
 * The step cache with real builds under TCG: hits without a VM, invalidation by content and
 * text, resume after a failure, two builds at once on one cache, a moved cache, a deleted layer.
 * Images are compared with qemu-img and read back with debugfs, never through transient.
 */
import assert from "node:assert/strict"
import { MAIN, offlineBuildArgs } from "../support/run_transient.ts"
import { runHost } from "../support/host_tool.ts"
import { makeBusyboxRootfs } from "../../examples/hello/make_rootfs.ts"
import { extractPartition, qemuProcessesWith, rawDisk, tool } from "../support/host.ts"

const work = await Deno.makeTempDir({ prefix: "transient-e2e-cache-" })
const rootfs = `${work}/rootfs.tar.gz`
await makeBusyboxRootfs(rootfs)

const IMAGEFILE = (run = "echo two > /two") =>
  [
    "FROM scratch",
    "DISK 64 MB GPT",
    "PARTITION 1 FORMAT ext4 MOUNT /",
    "ADD rootfs.tar.gz /",
    "COPY data.txt /data.txt",
    "RUN echo one > /one",
    `RUN ${run}`,
  ].join("\n") + "\n"

/** A build context `name` with the rootfs, data.txt and the Imagefile. */
const context = async (name: string, imagefile = IMAGEFILE(), data = "data\n") => {
  const dir = `${work}/${name}`
  await Deno.mkdir(dir, { recursive: true })
  await Deno.copyFile(rootfs, `${dir}/rootfs.tar.gz`)
  await Deno.writeTextFile(`${dir}/data.txt`, data)
  await Deno.writeTextFile(`${dir}/Imagefile`, imagefile)
  return dir
}

interface Built {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
  /** The steps served from the cache, and those that ran. */
  readonly cached: ReadonlyArray<number>
  readonly ran: ReadonlyArray<number>
  /** Whether a QEMU of this cache was seen while the build ran. */
  readonly sawVm: boolean
}

const stepsOf = (stdout: string) => {
  const lines = stdout.split("\n")
  const cached: Array<number> = []
  const ran: Array<number> = []
  for (const [i, line] of lines.entries()) {
    const step = /^Step (\d+)\/\d+ : /.exec(line)?.[1]
    if (step === undefined) continue
    ;(lines[i + 1] === " ---> Using cache" ? cached : ran).push(Number(step))
  }
  return { cached, ran }
}

const build = async (
  dir: string,
  cache: string,
  name: string,
  ...extra: Array<string>
): Promise<Built> => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      ...offlineBuildArgs(dir, "--local", "--force", "--name", name, ...extra),
    ],
    env: { NO_COLOR: "1", TRANSIENT_CACHE_DIR: cache, TRANSIENT_IMAGE_BACKEND: `${work}/store` },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn()
  let sawVm = false
  let running = true
  const watch = (async () => {
    while (running) {
      if ((await qemuProcessesWith(cache)).length > 0) sawVm = true
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  })()
  const output = await child.output()
  running = false
  await watch
  const stdout = new TextDecoder().decode(output.stdout)
  const stderr = new TextDecoder().decode(output.stderr)
  return { code: output.code, stdout, stderr, ...stepsOf(stdout), sawVm }
}

const ok = (built: Built) => assert.equal(built.code, 0, built.stderr + built.stdout)
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i)

/** The files of the image's first partition as debugfs dumps them: path -> mode and bytes. */
const treeOf = async (qcow2: string) => {
  const base = `${work}/tree-${crypto.randomUUID()}`
  const disk = await rawDisk(qcow2, `${base}.raw`)
  await extractPartition(`${base}.raw`, disk.partitions[0]!, `${base}.ext4`)
  await Deno.mkdir(`${base}.d`)
  await tool("debugfs", "-R", `rdump / ${base}.d`, `${base}.ext4`)
  const tree = new Map<string, string>()
  const visit = async (dir: string, prefix: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = `${prefix}/${entry.name}`
      const info = await Deno.lstat(`${dir}/${entry.name}`)
      const mode = (info.mode ?? 0) & 0o7777
      if (entry.isSymlink) tree.set(path, `link ${await Deno.readLink(`${dir}/${entry.name}`)}`)
      else if (entry.isDirectory) {
        tree.set(path, `dir ${mode.toString(8)}`)
        await visit(`${dir}/${entry.name}`, path)
      } else {
        const bytes = await Deno.readFile(`${dir}/${entry.name}`)
        tree.set(path, `file ${mode.toString(8)} ${new TextDecoder().decode(bytes)}`)
      }
    }
  }
  await visit(`${base}.d`, "")
  // Written by mke2fs and by the journal, not by any step.
  tree.delete("/lost+found")
  await Deno.remove(`${base}.d`, { recursive: true })
  await Deno.remove(`${base}.raw`)
  await Deno.remove(`${base}.ext4`)
  return tree
}

const layersIn = async (cache: string) =>
  (await Array.fromAsync(Deno.readDir(`${cache}/layers`)))
    .map((entry) => entry.name)
    .filter((name) => name.endsWith(".qcow2"))

Deno.test("an unchanged rebuild uses the cache for every step, starts no VM, and gives the same image", async () => {
  const dir = await context("same")
  const cache = `${work}/cache-same`
  const first = await build(dir, cache, "first")
  ok(first)
  assert.deepEqual(first.ran, range(1, 7))
  const second = await build(dir, cache, "second")
  ok(second)
  assert.deepEqual(second.cached, range(1, 7))
  assert.deepEqual(second.ran, [])
  assert.equal(second.sawVm, false, "no QEMU ran for the cached build")
  await tool("qemu-img", "compare", `${dir}/first.qcow2`, `${dir}/second.qcow2`)
  // Standalone: the published file needs nothing from the cache.
  const info = JSON.parse(await tool("qemu-img", "info", "--output=json", `${dir}/second.qcow2`))
  assert.equal(info["backing-filename"], undefined)

  // A cached rebuild reads the same as one that ran every step.
  const fresh = await build(dir, cache, "fresh", "--no-cache")
  ok(fresh)
  assert.deepEqual(fresh.cached, [])
  assert.deepEqual(await treeOf(`${dir}/second.qcow2`), await treeOf(`${dir}/fresh.qcow2`))
  const tree = await treeOf(`${dir}/second.qcow2`)
  assert.equal(tree.get("/one"), "file 644 one\n")
  assert.equal(tree.get("/data.txt"), "file 644 data\n")
})

Deno.test("invalidation: a COPY source's content reruns from it, a touch reruns nothing, a RUN's text reruns from it", async () => {
  const dir = await context("invalidate")
  const cache = `${work}/cache-invalidate`
  ok(await build(dir, cache, "v1"))

  const touched = new Date(Date.now() + 60_000)
  await Deno.utime(`${dir}/data.txt`, touched, touched)
  const touch = await build(dir, cache, "v2")
  ok(touch)
  assert.deepEqual(touch.ran, [], "an mtime alone changes no key")

  await Deno.writeTextFile(`${dir}/data.txt`, "other data\n")
  const content = await build(dir, cache, "v3")
  ok(content)
  assert.deepEqual(content.cached, range(1, 4))
  assert.deepEqual(content.ran, [5, 6, 7])
  assert.equal((await treeOf(`${dir}/v3.qcow2`)).get("/data.txt"), "file 644 other data\n")

  await Deno.writeTextFile(`${dir}/Imagefile`, IMAGEFILE("echo three > /three"))
  const text = await build(dir, cache, "v4")
  ok(text)
  assert.deepEqual(text.cached, range(1, 6))
  assert.deepEqual(text.ran, [7])
  const tree = await treeOf(`${dir}/v4.qcow2`)
  assert.equal(tree.get("/three"), "file 644 three\n")
  assert.equal(tree.get("/two"), undefined)
})

Deno.test("a failed RUN keeps the steps before it: after the fix, the build starts at that step", async () => {
  const dir = await context("resume", IMAGEFILE("exit 7"))
  const cache = `${work}/cache-resume`
  const failed = await build(dir, cache, "resume")
  assert.equal(failed.code, 1)
  assert.match(failed.stderr, /Step 7\/7 : RUN exit 7 failed: the command exited with status 7/)
  assert.deepEqual(await Array.fromAsync(Deno.readDir(`${cache}/work`)), [], "no work is left")

  await Deno.writeTextFile(`${dir}/Imagefile`, IMAGEFILE("echo fixed > /fixed"))
  const fixed = await build(dir, cache, "resume")
  ok(fixed)
  assert.deepEqual(fixed.cached, range(1, 6))
  assert.deepEqual(fixed.ran, [7])
  assert.equal((await treeOf(`${dir}/resume.qcow2`)).get("/fixed"), "file 644 fixed\n")
})

Deno.test("two builds that share steps run at once on one cache: both succeed, every layer intact", async () => {
  const cache = `${work}/cache-concurrent`
  const a = await context("concurrent-a", IMAGEFILE("echo a > /which"))
  const b = await context("concurrent-b", IMAGEFILE("echo b > /which"))
  const [left, right] = await Promise.all([build(a, cache, "a"), build(b, cache, "b")])
  ok(left)
  ok(right)
  assert.equal((await treeOf(`${a}/a.qcow2`)).get("/which"), "file 644 a\n")
  assert.equal((await treeOf(`${b}/b.qcow2`)).get("/which"), "file 644 b\n")
  for (const layer of await layersIn(cache)) {
    await tool("qemu-img", "check", "-q", `${cache}/layers/${layer}`)
  }
  // The shared steps were kept once, by whichever build kept them first; the other build's
  // own last layer stood on its own copy of them and was not kept, so it runs once more.
  const again = await build(b, cache, "b")
  ok(again)
  assert.deepEqual(again.cached.slice(0, 6), range(1, 6))
  const third = await build(b, cache, "b")
  ok(third)
  assert.deepEqual(third.ran, [])
})

Deno.test("a moved cache still serves hits; a deleted layer is built again", async () => {
  const dir = await context("moved")
  const cache = `${work}/cache-moved`
  ok(await build(dir, cache, "before"))
  const moved = `${work}/cache-moved-elsewhere`
  await Deno.rename(cache, moved)
  const after = await build(dir, moved, "after")
  ok(after)
  assert.deepEqual(after.ran, [])
  await tool("qemu-img", "compare", `${dir}/before.qcow2`, `${dir}/after.qcow2`)

  // The layer of step 6 (RUN echo one): found by the step text its record holds.
  const records = (await Array.fromAsync(Deno.readDir(`${moved}/layers`)))
    .filter((entry) => entry.name.endsWith(".json"))
  let removed = false
  for (const record of records) {
    const recorded = JSON.parse(await Deno.readTextFile(`${moved}/layers/${record.name}`))
    if (recorded.text === "RUN echo one > /one") {
      // A layer's file is named by its digest.
      await Deno.remove(`${moved}/layers/${recorded.digest.slice("sha256:".length)}.qcow2`)
      removed = true
    }
  }
  assert.ok(removed, "the layer of step 6 was there")
  const rebuilt = await build(dir, moved, "rebuilt")
  ok(rebuilt)
  assert.deepEqual(rebuilt.cached, range(1, 5))
  assert.deepEqual(rebuilt.ran, [6, 7])
  assert.deepEqual(await treeOf(`${dir}/rebuilt.qcow2`), await treeOf(`${dir}/before.qcow2`))

  const listed = await runHost([Deno.execPath(), "run", "-A", MAIN, "cache", "ls", "--json"], {
    env: { TRANSIENT_CACHE_DIR: moved },
  })
  assert.equal(listed.code, 0, listed.stderr)
  assert.ok(JSON.parse(listed.stdout).length >= 5)
  const pruned = await runHost(
    [Deno.execPath(), "run", "-A", MAIN, "cache", "prune", "--all"],
    { env: { TRANSIENT_CACHE_DIR: moved } },
  )
  assert.equal(pruned.code, 0, pruned.stderr)
  assert.deepEqual(await layersIn(moved), [])
})

globalThis.addEventListener("unload", () => {
  Deno.removeSync(work, { recursive: true })
})
