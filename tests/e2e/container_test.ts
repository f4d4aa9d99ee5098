/**
 * ADD of container images in real builds: the OCI whiteout set (made by umoci) pushed to a local
 * `docker-registry` and written as an oci-archive and a docker-archive by skopeo, each built onto
 * an ext4 root in the helper VM; the trees the builds made, read back from the disks, equal what
 * `umoci unpack` makes of the same image. A rebuild of the unchanged tag is all cache; a layer
 * with a `..` path is refused and nothing is written.
 *
 * Needs root: umoci keeps owners and device nodes only as root, and the built disks are read
 * through a read-only loop mount (the independent reader of ext4 here).
 */
import assert from "node:assert/strict"
import { startDockerRegistry } from "../support/docker_registry.ts"
import { tool } from "../support/host_tool.ts"
import { handMadeTar, listTree, run, UmociImage, whiteoutSetImage } from "../support/layer_trees.ts"
import { transient } from "../support/run_transient.ts"

const ignore = Deno.uid() !== 0 ||
  !(await Deno.stat("/dev/loop-control").then(() => true, () => false))
if (ignore) console.log("container_test: skipped, it needs root and loop devices to read the disks")

const work = ignore ? "" : await Deno.makeTempDir({ prefix: "transient-container-e2e-" })
const context = `${work}/context`

/** The image every build unpacks, and the tree umoci unpacks of it. */
const setup = ignore ? undefined : await (async () => {
  await Deno.mkdir(context)
  const image = whiteoutSetImage(`${work}/image`)
  const expected = await listTree(image.unpack())
  const registry = await startDockerRegistry(work)
  const copy = (to: string) =>
    run("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", image.transport, to])
  copy(`docker://${registry.host}/test/whiteouts:1`)
  copy(`oci-archive:${context}/image.tar`)
  copy(`docker-archive:${context}/image-docker.tar:test/whiteouts:1`)
  return { expected, registry, image }
})()

const imagefile = (source: string) =>
  [
    "FROM scratch",
    // 1 GB: mke2fs then gives 256-byte inodes, whose times keep nanoseconds.
    "DISK 1 GB MBR",
    "PARTITION 1 FORMAT ext4 MOUNT /",
    `ADD ${source} /`,
  ].join("\n") + "\n"

/** `build --local` of `source` as NAME: its outcome. */
const buildFrom = async (name: string, source: string, ...extra: ReadonlyArray<string>) => {
  await Deno.writeTextFile(`${context}/${name}.Imagefile`, imagefile(source))
  return await transient([
    "build",
    "--accel",
    "tcg",
    "--progress",
    "plain",
    "--no-network",
    "--local",
    "--name",
    name,
    "--file",
    `${context}/${name}.Imagefile`,
    ...extra,
    context,
  ])
}

/** The tree of the built disk's root filesystem, as listTree lists it (lost+found aside). */
const builtTree = async (name: string) => {
  const raw = `${work}/${name}.raw`
  const mountpoint = `${work}/${name}.mnt`
  await tool("qemu-img", "convert", "-f", "qcow2", "-O", "raw", `${context}/${name}.qcow2`, raw)
  await Deno.mkdir(mountpoint)
  // The partition starts at 1 MiB.
  await tool("mount", "-o", "ro,loop,offset=1048576", raw, mountpoint)
  try {
    return (await listTree(mountpoint)).filter((line) => !/^lost\+found( |\/)/.test(line))
  } finally {
    await tool("umount", mountpoint)
    await Deno.remove(raw)
  }
}

/** The root's own line is the filesystem's, not the image's: compared without it. */
const belowRoot = (tree: ReadonlyArray<string>) => tree.filter((line) => !line.startsWith(". "))

Deno.test({
  name: "docker://, oci-archive: and docker-archive: give the tree umoci unpacks",
  ignore,
  fn: async (t) => {
    const { expected, registry } = setup!
    const sources = [
      ["from-registry", `docker://${registry.host}/test/whiteouts:1`, ["--plain-http"]],
      ["from-oci-archive", "oci-archive:image.tar", []],
      ["from-docker-archive", "docker-archive:image-docker.tar", []],
    ] as const
    for (const [name, source, extra] of sources) {
      await t.step(source, async () => {
        const built = await buildFrom(name, source, ...extra)
        assert.equal(built.code, 0, built.stderr)
        assert.match(built.stderr, /Layer 3\/3 of /)
        assert.deepEqual(belowRoot(await builtTree(name)), belowRoot(expected))
      })
    }
  },
})

Deno.test({
  name: "a rebuild of an unchanged tag asks for its manifest and reuses every step",
  ignore,
  fn: async () => {
    const { registry } = setup!
    const source = `docker://${registry.host}/test/whiteouts:1`
    const first = await buildFrom("rebuilt", source, "--plain-http")
    assert.equal(first.code, 0, first.stderr)
    const again = await buildFrom("rebuilt", source, "--plain-http", "--force")
    assert.equal(again.code, 0, again.stderr)
    assert.equal((again.stdout.match(/---> Using cache/g) ?? []).length, 4, again.stdout)
    assert.doesNotMatch(again.stdout, /helper VM (booted|restored)|Layer \d\/\d/)
  },
})

Deno.test({
  name: "a layer with a '..' path is refused, naming the entry, and nothing is written",
  ignore,
  fn: async () => {
    const bad = new UmociImage(`${work}/bad`)
    bad.addLayer(handMadeTar(`${work}/bad`, "escape.tar", [
      { name: "fine", data: "fine\n" },
      { name: "../escaped", data: "outside\n" },
    ]))
    run("skopeo", ["copy", "--quiet", bad.transport, `oci:${context}/bad:1`])
    const built = await buildFrom("refused", "oci:bad:1")
    assert.equal(built.code, 1)
    assert.match(
      built.stderr,
      /Step 4\/4 : ADD oci:bad:1 \/ failed: layer sha256:\w{12}: layer entry '\.\.\/escaped' has a '\.\.' component/,
    )
    assert.equal(await Deno.stat(`${context}/refused.qcow2`).then(() => true, () => false), false)
  },
})

Deno.test({
  name: "a layer whose bytes do not match its digest fails its step, naming it; nothing is written",
  ignore,
  fn: async () => {
    const corrupt = `${context}/corrupt`
    run("skopeo", ["copy", "--quiet", setup!.image.transport, `oci:${corrupt}:1`])
    // The last layer's blob, one byte changed in its middle (gzip's CRC is checked as well).
    const index = JSON.parse(await Deno.readTextFile(`${corrupt}/index.json`))
    const blob = (digest: string) => `${corrupt}/blobs/${digest.replace(":", "/")}`
    const manifest = JSON.parse(await Deno.readTextFile(blob(index.manifests[0].digest)))
    const last = manifest.layers.at(-1).digest as string
    const bytes = await Deno.readFile(blob(last))
    const middle = bytes.length >> 1
    bytes[middle] = bytes[middle]! ^ 0xff
    await Deno.writeFile(blob(last), bytes)
    const built = await buildFrom("corrupted", "oci:corrupt:1")
    assert.equal(built.code, 1, built.stdout)
    assert.match(built.stderr, /Step 4\/4 : ADD oci:corrupt:1 \/ failed: .* has a corrupt blob /)
    assert.ok(built.stderr.includes(last), built.stderr)
    assert.equal(await Deno.stat(`${context}/corrupted.qcow2`).then(() => true, () => false), false)
  },
})

globalThis.addEventListener("unload", () => {
  if (ignore) return
  setup?.registry.stop().catch(() => {})
  Deno.removeSync(work, { recursive: true })
})
