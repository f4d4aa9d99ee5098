/**
 * Owned paths and the sweep of stale ones: an owner is alive while it holds its lock, whichever
 * process (or PID namespace) it runs in, and gone once it is killed, SIGKILL included.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import assert from "node:assert/strict"
import { ownedPath, sweepStale } from "../../src/layers/stale_files.ts"
import { runTest } from "../support/effect.ts"
import { runHost } from "../support/host_tool.ts"
import { MAIN, ROOT } from "../support/run_transient.ts"

const HOLD = `${ROOT}tests/support/hold_owned.ts`
const OWNED = /^owned-/

const sweep = (directory: string) =>
  runTest(
    sweepStale(directory, (name) => OWNED.test(name)).pipe(Effect.provide(NodeContext.layer)),
  )

const names = (directory: string) =>
  [...Deno.readDirSync(directory)].map((entry) => entry.name).sort()

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false)

/** Another process that holds `mode`'s path at `at` (hold_owned.ts) until it is killed. */
const startHolder = async (mode: "path" | "workspace", at: string) => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", HOLD, mode, at],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn()
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader()
  let output = ""
  while (!output.includes("\n")) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`the holder ended before holding ${at}`)
    output += value
  }
  const kill = async () => {
    child.kill("SIGKILL")
    await child.status
    await reader.cancel()
  }
  return { pid: child.pid, path: output.trim(), kill }
}

Deno.test("a path whose owner holds its lock in another process survives sweeps until SIGKILL ends it", async () => {
  const dir = await Deno.makeTempDir()
  const holder = await startHolder("path", `${dir}/owned-build`)
  try {
    assert.deepEqual(await sweep(dir), [])
    assert.deepEqual(names(dir), ["owned-build", "owned-build.lock"])
  } finally {
    await holder.kill()
  }
  // The kernel dropped the lock with the process; nothing of it is left after the next sweep.
  assert.deepEqual(await sweep(dir), ["owned-build"])
  assert.deepEqual(names(dir), [])
})

Deno.test("an owned path is created under its lock and removed with it when the scope closes", async () => {
  const dir = await Deno.makeTempDir()
  await runTest(
    Effect.scoped(Effect.gen(function* () {
      const path = yield* ownedPath(`${dir}/owned-file`)
      yield* Effect.promise(() => Deno.writeTextFile(path, "in use"))
      // This process's own sweep respects it too: flock locks belong to open files, not pids.
      assert.deepEqual(yield* sweepStale(dir, (name) => OWNED.test(name)), [])
      assert.deepEqual(names(dir), ["owned-file", "owned-file.lock"])
    })).pipe(Effect.provide(NodeContext.layer)),
  )
  assert.deepEqual(names(dir), [])
})

Deno.test("a sweep removes owned names without a lock or with a free one, and nothing else", async () => {
  const dir = await Deno.makeTempDir()
  await Deno.mkdir(`${dir}/owned-no-lock`)
  await Deno.writeTextFile(`${dir}/owned-no-lock/data`, "left by a killed owner")
  await Deno.writeTextFile(`${dir}/owned-free`, "")
  await Deno.writeTextFile(`${dir}/owned-free.lock`, "")
  await Deno.writeTextFile(`${dir}/owned-only.lock`, "")
  await Deno.writeTextFile(`${dir}/other`, "")
  await Deno.writeTextFile(`${dir}/other.lock`, "")
  // A FIFO in place of a lock (planted in /tmp) neither blocks the sweep nor counts as free.
  await runHost(["mkfifo", `${dir}/owned-fifo.lock`])
  await Deno.writeTextFile(`${dir}/owned-fifo`, "")
  assert.deepEqual(
    [...await sweep(dir)].sort(),
    ["owned-free", "owned-no-lock", "owned-only"],
  )
  assert.deepEqual(names(dir), ["other", "other.lock", "owned-fifo", "owned-fifo.lock"])
})

/** `argv` in a new PID namespace, with its own /proc: no process outside it is visible there. */
const inOtherPidNamespace = (argv: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  runHost(["unshare", "--pid", "--fork", "--mount-proc", ...argv], { cwd: ROOT, env })

const canUnshare = Deno.build.os === "linux" &&
  (await runHost(["unshare", "--pid", "--fork", "--mount-proc", "true"]).catch(() => undefined))
      ?.code === 0

Deno.test({
  name: "a build in another PID namespace leaves a running build's workspace alone",
  ignore: !canUnshare,
  fn: async () => {
    const cache = await Deno.makeTempDir()
    const build = await startHolder("workspace", cache)
    const prune = () =>
      inOtherPidNamespace([Deno.execPath(), "run", "-A", MAIN, "cache", "prune"], {
        TRANSIENT_CACHE_DIR: cache,
        NO_COLOR: "1",
      })
    try {
      assert.ok(build.path.startsWith(`${cache}/work/${build.pid}.`), build.path)
      // There, the running build's pid names no process.
      const seen = await inOtherPidNamespace(["test", "-e", `/proc/${build.pid}`])
      assert.equal(seen.code, 1)
      // Opening the cache sweeps work/, as every build and prune does.
      const pruned = await prune()
      assert.equal(pruned.code, 0, pruned.stderr)
      assert.ok(await exists(build.path), "the running build's workspace was removed")
      assert.ok(await exists(`${build.path}.lock`))
    } finally {
      await build.kill()
    }
    // Once the build is killed, the same prune removes what it left.
    const pruned = await prune()
    assert.equal(pruned.code, 0, pruned.stderr)
    assert.deepEqual(names(`${cache}/work`), [])
  },
})
