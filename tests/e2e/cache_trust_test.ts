/**
 * The step cache's trust model with real builds under TCG (docs/step-cache.md#trust-model): two
 * cache directories stand for two machines sharing a build cache in Debian's docker-registry on
 * 127.0.0.1; layers swapped, truncated or planted in a cache, and a poisoned map entry in the
 * registry. Every image is checked with `e2fsck -fn` and read back with debugfs, never through
 * transient.
 */
import assert from "node:assert/strict"
import { createHash } from "node:crypto"
import { makeBusyboxRootfs } from "../../examples/hello/make_rootfs.ts"
import { startDockerRegistry } from "../support/docker_registry.ts"
import { extractPartition, rawDisk, tool } from "../support/host.ts"
import { MAIN, offlineBuildArgs } from "../support/run_transient.ts"

const work = await Deno.makeTempDir({ prefix: "transient-e2e-trust-" })
const registry = await startDockerRegistry(work)
const REFERENCE = `${registry.host}/e2e/trust:main`

const IMAGEFILE = (...runs: ReadonlyArray<string>) =>
  [
    "FROM scratch",
    "DISK 64 MB GPT",
    "PARTITION 1 FORMAT ext4 MOUNT /",
    "ADD rootfs.tar.gz /",
    "COPY data.txt /data.txt",
    ...runs.map((run) => `RUN ${run}`),
  ].join("\n") + "\n"
const FULL = IMAGEFILE("echo one > /one", "echo two > /two")

const dir = `${work}/context`
await Deno.mkdir(dir)
await makeBusyboxRootfs(`${dir}/rootfs.tar.gz`)
await Deno.writeTextFile(`${dir}/data.txt`, "data\n")

interface Built {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
  /** Each step's line after its `Step N/M` line. */
  readonly steps: ReadonlyArray<string>
  readonly ran: ReadonlyArray<number>
  readonly image: string
}

/** Build `imagefile` as `name` on the cache directory `cache` (a machine). */
const build = async (
  cache: string,
  name: string,
  imagefile: string,
  ...extra: Array<string>
): Promise<Built> => {
  const file = `${dir}/Imagefile.${name}`
  await Deno.writeTextFile(file, imagefile)
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      ...offlineBuildArgs(dir, "--local", "--force", "--name", name, "--file", file, ...extra),
    ],
    env: { NO_COLOR: "1", TRANSIENT_CACHE_DIR: cache, TRANSIENT_IMAGE_BACKEND: `${work}/store` },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output()
  const stdout = new TextDecoder().decode(output.stdout)
  const lines = stdout.split("\n")
  const steps: Array<string> = []
  const ran: Array<number> = []
  for (const [i, line] of lines.entries()) {
    const step = /^Step (\d+)\/\d+ : /.exec(line)?.[1]
    if (step === undefined) continue
    const next = lines[i + 1] ?? ""
    steps.push(next)
    if (!next.startsWith(" ---> Using cache")) ran.push(Number(step))
  }
  return {
    code: output.code,
    stdout,
    stderr: new TextDecoder().decode(output.stderr),
    steps,
    ran,
    image: `${dir}/${name}.qcow2`,
  }
}

const ok = (built: Built) => assert.equal(built.code, 0, built.stderr + built.stdout)

/**
 * The image's first partition, checked by `e2fsck -fn`, as debugfs dumps its files: path ->
 * kind, mode and content.
 */
const checkedTree = async (qcow2: string) => {
  const base = `${work}/tree-${crypto.randomUUID()}`
  const disk = await rawDisk(qcow2, `${base}.raw`)
  await extractPartition(`${base}.raw`, disk.partitions[0]!, `${base}.ext4`)
  await tool("e2fsck", "-fn", `${base}.ext4`)
  await Deno.mkdir(`${base}.d`)
  await tool("debugfs", "-R", `rdump / ${base}.d`, `${base}.ext4`)
  const tree = new Map<string, string>()
  const visit = async (at: string, prefix: string) => {
    for await (const entry of Deno.readDir(at)) {
      const path = `${prefix}/${entry.name}`
      const mode = ((await Deno.lstat(`${at}/${entry.name}`)).mode ?? 0) & 0o7777
      if (entry.isSymlink) tree.set(path, `link ${await Deno.readLink(`${at}/${entry.name}`)}`)
      else if (entry.isDirectory) {
        tree.set(path, `dir ${mode.toString(8)}`)
        await visit(`${at}/${entry.name}`, path)
      } else {
        const text = new TextDecoder().decode(await Deno.readFile(`${at}/${entry.name}`))
        tree.set(path, `file ${mode.toString(8)} ${text}`)
      }
    }
  }
  await visit(`${base}.d`, "")
  tree.delete("/lost+found")
  await Deno.remove(base + ".d", { recursive: true })
  await Deno.remove(`${base}.raw`)
  await Deno.remove(`${base}.ext4`)
  return tree
}

/** The record in `cache` of the step whose text is `text`, and its layer's file. */
const layerOf = async (cache: string, text: string) => {
  for await (const entry of Deno.readDir(`${cache}/layers`)) {
    if (!entry.name.endsWith(".json")) continue
    const path = `${cache}/layers/${entry.name}`
    const record = JSON.parse(await Deno.readTextFile(path))
    if (record.text === text) {
      return { path, record, file: `${cache}/layers/${record.digest.slice(7)}.qcow2` }
    }
  }
  throw new Error(`no layer of ${text} in ${cache}`)
}

const copyCache = async (from: string, to: string) => {
  await tool("cp", "-a", from, to)
  return to
}

// The shared example: machine A builds FULL and pushes its layers.
const machineA = `${work}/machine-a`
const first = await build(machineA, "a", FULL, "--cache-to", REFERENCE)
ok(first)
const treeA = await checkedTree(first.image)
assert.equal(treeA.get("/one"), "file 644 one\n")
assert.equal(treeA.get("/two"), "file 644 two\n")
assert.equal(treeA.get("/data.txt"), "file 644 data\n")

Deno.test("two machines sharing a registry cache: B takes A's whole chain over its own first layers", async () => {
  // Machine B built the first steps itself: the same keys, another filesystem (mkfs UUID...).
  const machineB = `${work}/machine-b`
  ok(await build(machineB, "b-own", IMAGEFILE("echo one > /one")))
  const own = await layerOf(machineB, "RUN echo one > /one")
  const fromA = await layerOf(machineA, "RUN echo one > /one")
  assert.notEqual(own.record.digest, fromA.record.digest)

  const shared = await build(machineB, "b", FULL, "--cache-from", REFERENCE)
  ok(shared)
  assert.deepEqual(shared.steps, Array(7).fill(` ---> Using cache (from ${REFERENCE})`))
  // Exactly the files of its steps, on a filesystem that passes e2fsck: A's, whole.
  assert.deepEqual(await checkedTree(shared.image), treeA)
  assert.equal((await layerOf(machineB, "RUN echo one > /one")).record.digest, fromA.record.digest)
})

Deno.test("a swapped, a truncated and a planted layer are rebuilt with a warning, never published", async () => {
  const damage: Record<string, (layer: Awaited<ReturnType<typeof layerOf>>) => Promise<void>> = {
    // Another valid qcow2 (the next step's layer) in its place.
    swapped: async ({ file }) => {
      const other = await layerOf(machineA, "RUN echo two > /two")
      await Deno.remove(file)
      await Deno.copyFile(other.file, file)
    },
    truncated: async ({ file }) => {
      await Deno.chmod(file, 0o644)
      await Deno.truncate(file, Math.floor((await Deno.stat(file)).size / 2))
    },
    // Its backing file a host file, with a record made to agree (a restored cache tarball).
    planted: async ({ path, record, file }) => {
      await Deno.chmod(file, 0o644)
      await tool(
        "qemu-img",
        "rebase",
        "-u",
        "-f",
        "qcow2",
        "-b",
        "/etc/hostname",
        "-F",
        "raw",
        file,
      )
      const digest = `sha256:${
        createHash("sha256").update(await Deno.readFile(file)).digest("hex")
      }`
      await Deno.rename(file, file.replace(/[0-9a-f]{64}\.qcow2$/, `${digest.slice(7)}.qcow2`))
      const { stamp: _, ...unstamped } = record
      await Deno.writeTextFile(path, JSON.stringify({ ...unstamped, digest }))
    },
  }
  for (const [how, harm] of Object.entries(damage)) {
    const cache = await copyCache(machineA, `${work}/machine-${how}`)
    await harm(await layerOf(cache, "RUN echo one > /one"))
    const built = await build(cache, how, FULL)
    ok(built)
    assert.match(
      built.stderr + built.stdout,
      /The cached layer [0-9a-f]{12} \(RUN echo one > \/one\) is not used and was removed: /,
      how,
    )
    assert.deepEqual(built.ran, [6, 7], how)
    assert.deepEqual(await checkedTree(built.image), treeA, how)
    // Kept again: the next build is served whole.
    const again = await build(cache, `${how}-again`, FULL)
    ok(again)
    assert.deepEqual(again.ran, [], how)
  }
})

Deno.test("a poisoned map entry is not used and not kept; its step runs here", async () => {
  // RUN two's layer (made on RUN one's) served as RUN one's, under another tag.
  const [repository, tag] = REFERENCE.slice(registry.host.length + 1).split(":")
  const url = (reference: string) =>
    `http://${registry.host}/v2/${repository}/manifests/${reference}`
  const accept = "application/vnd.oci.image.manifest.v1+json"
  const manifest = await (await fetch(url(tag!), { headers: { accept } })).json()
  const byText = (text: string) =>
    manifest.layers.find((layer: { annotations: Record<string, string> }) =>
      layer.annotations["io.transient.cache.text"] === text
    )
  const one = byText("RUN echo one > /one")
  const two = byText("RUN echo two > /two")
  one.digest = two.digest
  one.size = two.size
  const put = await fetch(url("poisoned"), {
    method: "PUT",
    headers: { "content-type": accept },
    body: JSON.stringify(manifest),
  })
  assert.equal(put.status, 201, await put.text())

  const cache = `${work}/machine-poisoned`
  const poisoned = `${registry.host}/${repository}:poisoned`
  const built = await build(cache, "poisoned", FULL, "--cache-from", poisoned)
  ok(built)
  assert.match(
    built.stderr + built.stdout,
    new RegExp(`The build cache ${poisoned} was not used: .*refused`),
  )
  assert.deepEqual(built.ran, [6, 7])
  assert.deepEqual(await checkedTree(built.image), treeA)
  const kept = await layerOf(cache, "RUN echo one > /one")
  assert.notEqual(kept.record.digest, two.digest, "the poisoned layer is not kept")
  await Deno.stat(`${cache}/layers/${two.digest.slice(7)}.qcow2`).then(
    () => assert.fail("the poisoned layer's file is in the cache"),
    () => {},
  )
})

Deno.test("a build during `cache prune --all` and a --no-cache rebuild of its steps publishes its own image", async () => {
  const cache = await copyCache(machineA, `${work}/machine-busy`)
  // Steps 1-6 served from the cache; step 7 runs long enough for the others to act under it.
  const slow = IMAGEFILE("echo one > /one", "sleep 6; echo slow > /two")
  const running = build(cache, "busy", slow)
  await new Promise((resolve) => setTimeout(resolve, 3000))
  const [pruned, rebuilt] = await Promise.all([
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "cache", "prune", "--all"],
      env: { TRANSIENT_CACHE_DIR: cache },
      stdout: "piped",
      stderr: "piped",
    }).output(),
    build(cache, "busy-no-cache", FULL, "--no-cache"),
  ])
  assert.equal(pruned.code, 0, new TextDecoder().decode(pruned.stderr))
  ok(rebuilt)
  const busy = await running
  ok(busy)
  assert.deepEqual(busy.ran, [7])
  const tree = await checkedTree(busy.image)
  assert.deepEqual(tree, new Map([...treeA, ["/two", "file 644 slow\n"]]))
  assert.deepEqual(await checkedTree(rebuilt.image), treeA)
})

globalThis.addEventListener("unload", () => {
  registry.stop().catch(() => {})
  Deno.removeSync(work, { recursive: true })
})
