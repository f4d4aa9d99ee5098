/**
 * The helper VM's saved state, through `transient build` under TCG: the first build of a cache
 * boots the VM and saves it, the next ones restore it; a restored VM keeps the host's time and
 * draws its own random numbers; a state that does not load is replaced, not trusted. What the
 * builds wrote is read back with sfdisk and debugfs.
 */
import assert from "node:assert/strict"
import { coldBuildArgs, transient } from "../support/run_transient.ts"
import { writeScratchContext } from "../support/scratch_context.ts"
import { extCat, extractPartition, qemuProcessesWith, rawDisk } from "../support/host.ts"

const work = await Deno.makeTempDir({ prefix: "transient-e2e-state-" })
const cache = `${work}/cache`
const states = `${cache}/helper-vm`
const env = { TRANSIENT_IMAGE_BACKEND: `${work}/store`, TRANSIENT_CACHE_DIR: cache }

const context = `${work}/context`
await writeScratchContext(context)
// The last step records the guest's clock and 16 bytes of its randomness.
const imagefile = await Deno.readTextFile(`${context}/Imagefile`)
await Deno.writeTextFile(
  `${context}/Imagefile`,
  imagefile.replace(
    /^RUN .*$/m,
    "RUN date +%s > /stamp && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /random",
  ),
)

interface Built {
  readonly stdout: string
  readonly stderr: string
  /** The host's clock before and after the build, in seconds. */
  readonly from: number
  readonly to: number
  readonly stamp: number
  readonly random: string
}

let builds = 0
const build = async (): Promise<Built> => {
  const name = `b${++builds}`
  const from = Math.floor(Date.now() / 1000)
  const result = await transient(coldBuildArgs(context, "--local", "--name", name), { env })
  const to = Math.ceil(Date.now() / 1000)
  assert.equal(result.code, 0, result.stderr + result.stdout)
  const raw = `${work}/${name}.raw`
  const disk = await rawDisk(`${context}/${name}.qcow2`, raw)
  const root = disk.partitions[1]
  assert.ok(root, "the image has its root partition")
  await extractPartition(raw, root, `${raw}.root`)
  const stamp = Number((await extCat(`${raw}.root`, "/stamp")).trim())
  const random = (await extCat(`${raw}.root`, "/random")).trim()
  await Deno.remove(raw)
  await Deno.remove(`${raw}.root`)
  await Deno.remove(`${context}/${name}.qcow2`)
  return { stdout: result.stdout, stderr: result.stderr, from, to, stamp, random }
}

const stateFiles = async () => {
  const files: Array<{ name: string; size: number }> = []
  for await (const entry of Deno.readDir(states)) {
    files.push({ name: entry.name, size: (await Deno.stat(`${states}/${entry.name}`)).size })
  }
  return files
}

const BOOTED_AND_SAVED = /^ ---> helper VM booted in [\d.]+ s; its state is saved/m
const RESTORED = /^ ---> helper VM restored from its saved state in [\d.]+ s$/m

Deno.test("builds restore the VM the first one saved, each with the host's clock and its own randomness", async () => {
  const first = await build()
  assert.match(first.stdout, BOOTED_AND_SAVED)
  const saved = await stateFiles()
  assert.equal(saved.length, 1)
  assert.match(saved[0]!.name, /^[0-9a-f]{64}\.state$/)
  // A VM's memory, without its zero pages: far more than nothing, far less than 1 GiB.
  assert.ok(saved[0]!.size > 16 * 1024 ** 2 && saved[0]!.size < 1024 ** 3, `${saved[0]!.size}`)

  const second = await build()
  const third = await build()
  for (const restored of [second, third]) {
    assert.match(restored.stdout, RESTORED)
    assert.doesNotMatch(restored.stdout, /helper VM booted/)
    // The saved VM's clock stopped when it was saved; a restored one runs on the host's time.
    assert.ok(
      restored.stamp >= restored.from && restored.stamp <= restored.to,
      `the guest's clock said ${restored.stamp}, the build ran from ${restored.from} to ${restored.to}`,
    )
  }
  assert.match(second.random, /^[0-9a-f]{32}$/)
  assert.notEqual(
    second.random,
    third.random,
    "two VMs restored from one state drew the same bytes",
  )
  assert.deepEqual(await stateFiles(), saved, "a restore rewrote the state")
  assert.deepEqual(await qemuProcessesWith(work), [])
})

Deno.test("a saved state that does not load is replaced by a fresh boot's", async () => {
  if ((await stateFiles()).length === 0) await build()
  const [state] = await stateFiles()
  assert.ok(state)
  // What a disk error or an interrupted copy could leave: the right name, the wrong bytes.
  const garbage = new Uint8Array(1024 * 1024)
  for (let at = 0; at < garbage.length; at += 65536) {
    crypto.getRandomValues(garbage.subarray(at, at + 65536))
  }
  await Deno.writeFile(`${states}/${state.name}`, garbage)

  const afterGarbage = await build()
  assert.match(afterGarbage.stderr, /^warning: The helper VM's saved state did not restore \(/m)
  assert.match(afterGarbage.stdout, BOOTED_AND_SAVED)
  const [replaced] = await stateFiles()
  assert.equal(replaced?.name, state.name)
  assert.ok((replaced?.size ?? 0) > 16 * 1024 ** 2)

  const next = await build()
  assert.match(next.stdout, RESTORED)
  assert.equal(next.stderr.includes("warning"), false, next.stderr)
  assert.deepEqual(await qemuProcessesWith(work), [])

  // `cache prune --all` frees the states with the layers.
  const pruned = await transient(["cache", "prune", "--all"], { env })
  assert.equal(pruned.code, 0, pruned.stderr)
  assert.match(pruned.stdout, /^Removed \d+ layers and 1 saved helper-VM state, /m)
  assert.deepEqual(await stateFiles(), [])
})

Deno.test("a state saved for another machine is not restored under this one's name", async () => {
  const networked = async (name: string) => {
    const args = ["build", "--no-cache", "--accel", "tcg", "--progress", "plain"]
    const result = await transient([...args, "--local", "--name", name, context], { env })
    assert.equal(result.code, 0, result.stderr + result.stdout)
    await Deno.remove(`${context}/${name}.qcow2`)
    return result
  }
  // One state for a VM without network, then one for a VM with it: two keys.
  const before = new Set((await stateFiles()).map((file) => file.name))
  if (before.size === 0) await build()
  const [offline] = (await stateFiles()).map((file) => file.name)
  assert.ok(offline)
  assert.match((await networked("online1")).stdout, BOOTED_AND_SAVED)
  const online = (await stateFiles()).map((file) => file.name).find((name) => name !== offline)
  assert.ok(online, "the networked VM has a state of its own")

  // A cache merged by hand: the offline VM's state under the networked VM's name.
  await Deno.copyFile(`${states}/${offline}`, `${states}/${online}`)
  const merged = await networked("online2")
  assert.match(merged.stderr, /saved state did not restore \(.*saved for another machine/)
  assert.match(merged.stdout, BOOTED_AND_SAVED)
  assert.deepEqual(await qemuProcessesWith(work), [])
})

globalThis.addEventListener("unload", () => Deno.removeSync(work, { recursive: true }))
