/**
 * Finding the helper VM's artifacts (src/layers/qemu/guest_artifacts.ts), and the pure parts of
 * the recipe that makes them (guest/recipe): the manifest, the guest scripts, the cpio writer, ELF
 * dependencies, module selection.
 */
import assert from "node:assert/strict"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { type CpioEntry, writeCpio } from "../../guest/recipe/cpio.ts"
import { elfDependencies } from "../../guest/recipe/elf.ts"
import { Tree } from "../../guest/recipe/initramfs.ts"
import { selectModules } from "../../guest/recipe/modules.ts"
import { addScripts, readScripts } from "../../guest/recipe/scripts.ts"
import { VmBootFailed } from "../../src/domain/errors/vm.ts"
import {
  GUEST_SCRIPT_DIR,
  guestInputsDigest,
  type GuestManifest,
  GuestManifestJson,
} from "../../src/domain/guest/manifest.ts"
import { findGuestArtifacts } from "../../src/layers/qemu/guest_artifacts.ts"
import { runFailure, runTest } from "../support/effect.ts"

/** A guest/dist lookalike: small files and a manifest that lists them with their sizes. */
const fakeDist = async (dir: string, options: { runtime: boolean }) => {
  await Deno.mkdir(dir, { recursive: true })
  const written = async (name: string, content: string) => {
    await Deno.writeTextFile(`${dir}/${name}`, content)
    return { sha256: "0".repeat(64), size: content.length }
  }
  const manifest: GuestManifest = {
    inputs: "ab".repeat(32),
    pins: "cd".repeat(32),
    kernel: "6.1.0-56-amd64",
    deno: "deno 2.0.0",
    agent: ["guest/agent.ts"],
    scripts: [{ name: "partition.sh", sha256: "ef".repeat(32) }],
    packages: { "linux-image-6.1.0-56-amd64": "6.1.192-2" },
    artifacts: {
      vmlinux: await written("vmlinux", "kernel"),
      "initramfs.img": await written("initramfs.img", "initrd!"),
      ...(options.runtime ? { "runtime.img": await written("runtime.img", "runtime disk") } : {}),
    },
    options: { denoInInitramfs: !options.runtime, compression: "none" },
  }
  await Deno.writeTextFile(`${dir}/manifest.json`, Schema.encodeSync(GuestManifestJson)(manifest))
}

const find = (env: Record<string, string>, moduleUrl?: string) =>
  findGuestArtifacts(moduleUrl).pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
    Effect.provide(NodeContext.layer),
  )

const failureMessage = (cause: Cause.Cause<VmBootFailed>) => {
  const error = Option.getOrThrow(Cause.failureOption(cause))
  assert.ok(error instanceof VmBootFailed)
  return error.message
}

Deno.test("TRANSIENT_GUEST_DIR names the artifacts' directory", async () => {
  const dir = await Deno.makeTempDir()
  await fakeDist(dir, { runtime: true })
  const found = await runTest(find({ TRANSIENT_GUEST_DIR: dir }))
  assert.equal(found.kernel, `${dir}/vmlinux`)
  assert.equal(found.initrd, `${dir}/initramfs.img`)
  assert.equal(found.runtime, `${dir}/runtime.img`)
  assert.equal(found.manifest, `${dir}/manifest.json`)
  assert.equal(found.kernelVersion, "6.1.0-56-amd64")
  await Deno.remove(dir, { recursive: true })
})

Deno.test("without a runtime disk in the manifest, none is returned", async () => {
  const dir = await Deno.makeTempDir()
  await fakeDist(dir, { runtime: false })
  const found = await runTest(find({ TRANSIENT_GUEST_DIR: dir }))
  assert.equal(found.runtime, undefined)
  assert.equal("runtime" in found, false)
  await Deno.remove(dir, { recursive: true })
})

Deno.test("a directory without a manifest is an error naming `deno task guest`", async () => {
  const dir = await Deno.makeTempDir()
  const message = failureMessage(await runFailure(find({ TRANSIENT_GUEST_DIR: dir })))
  assert.match(message, /deno task guest/)
  assert.ok(message.includes(`${dir}/manifest.json does not exist`), message)
  await Deno.remove(dir, { recursive: true })
})

Deno.test("a missing or truncated artifact is an error naming the file", async () => {
  const dir = await Deno.makeTempDir()
  await fakeDist(dir, { runtime: true })
  await Deno.remove(`${dir}/initramfs.img`)
  let message = failureMessage(await runFailure(find({ TRANSIENT_GUEST_DIR: dir })))
  assert.ok(message.includes(`${dir}/initramfs.img does not exist`), message)
  assert.match(message, /deno task guest/)
  await Deno.writeTextFile(`${dir}/initramfs.img`, "short")
  message = failureMessage(await runFailure(find({ TRANSIENT_GUEST_DIR: dir })))
  assert.ok(message.includes(`${dir}/initramfs.img does not match its manifest`), message)
  await Deno.remove(dir, { recursive: true })
})

Deno.test("without the variable, guest/dist beside the sources is used", async () => {
  const root = await Deno.makeTempDir()
  await fakeDist(`${root}/guest/dist`, { runtime: true })
  const moduleUrl = `file://${root}/src/layers/qemu/guest_artifacts.ts`
  const found = await runTest(find({}, moduleUrl))
  assert.equal(found.kernel, `${root}/guest/dist/vmlinux`)
  const message = failureMessage(
    await runFailure(find({}, `file://${root}/elsewhere/src/layers/qemu/a.ts`)),
  )
  assert.match(message, /deno task guest/)
  await Deno.remove(root, { recursive: true })
})

Deno.test("artifacts embedded in a compiled executable are extracted to the cache once", async () => {
  const root = await Deno.makeTempDir()
  const embedded = `${root}/deno-compile-transient`
  await fakeDist(`${embedded}/guest/dist`, { runtime: true })
  const moduleUrl = `file://${embedded}/src/layers/qemu/guest_artifacts.ts`
  const env = { XDG_CACHE_HOME: `${root}/cache`, HOME: `${root}/home` }
  const found = await runTest(find(env, moduleUrl))
  const cacheDir = `${root}/cache/transient/guest/${"ab".repeat(8)}`
  assert.equal(found.kernel, `${cacheDir}/vmlinux`)
  assert.equal(await Deno.readTextFile(found.initrd), "initrd!")
  assert.equal(found.runtime, `${cacheDir}/runtime.img`)
  // A second lookup reuses the copy: the embedded files are no longer needed.
  await Deno.remove(embedded + "/guest/dist/vmlinux")
  await Deno.writeTextFile(embedded + "/guest/dist/vmlinux", "kernel")
  const again = await runTest(find(env, moduleUrl))
  assert.equal(again.kernel, found.kernel)
  assert.deepEqual([...Deno.readDirSync(cacheDir)].map((e) => e.name).sort(), [
    "initramfs.img",
    "manifest.json",
    "runtime.img",
    "vmlinux",
  ])
  await Deno.remove(root, { recursive: true })
})

Deno.test("manifest: what the recipe encodes decodes to the same value; a partial one does not", async () => {
  const dir = await Deno.makeTempDir()
  await fakeDist(dir, { runtime: true })
  const text = await Deno.readTextFile(`${dir}/manifest.json`)
  const manifest = Schema.decodeUnknownSync(GuestManifestJson)(text)
  assert.equal(Schema.encodeSync(GuestManifestJson)(manifest), text)
  assert.equal(guestInputsDigest(manifest), "ab".repeat(32))
  const { scripts: _, ...withoutScripts } = manifest
  const decode = Schema.decodeUnknownOption(GuestManifestJson)
  assert.ok(Option.isNone(decode(JSON.stringify(withoutScripts))))
  assert.ok(Option.isNone(decode(JSON.stringify({ ...manifest, inputs: "AB".repeat(32) }))))
  await Deno.remove(dir, { recursive: true })
})

Deno.test("scripts: the regular files of the directory, sorted, shipped 0755 in GUEST_SCRIPT_DIR", async () => {
  const dir = await Deno.makeTempDir()
  assert.deepEqual(await readScripts(`${dir}/missing`), [])
  await Deno.writeTextFile(`${dir}/b.sh`, "#!/bin/sh\necho b\n")
  await Deno.writeTextFile(`${dir}/a.sh`, "#!/bin/sh\necho a\n")
  await Deno.mkdir(`${dir}/nested`)
  await Deno.symlink("a.sh", `${dir}/link.sh`)
  const scripts = await readScripts(dir)
  assert.deepEqual(scripts.map((script) => script.name), ["a.sh", "b.sh"])
  assert.match(scripts[0]!.sha256, /^[0-9a-f]{64}$/)
  const tree = new Tree()
  addScripts(tree, scripts)
  const rows = readCpio(writeCpio(tree.complete()))
  assert.deepEqual(
    rows.filter((row) => row.path.endsWith(".sh")).map((row) => [`/${row.path}`, row.mode]),
    [`${GUEST_SCRIPT_DIR}/a.sh`, `${GUEST_SCRIPT_DIR}/b.sh`].map((path) => [path, 0o100755]),
  )
  await Deno.remove(dir, { recursive: true })
})

/** Parse a newc archive back into (path, mode, size, mtime, uid) rows. */
const readCpio = (archive: Uint8Array) => {
  const text = new TextDecoder()
  const rows: Array<{ path: string; mode: number; size: number; mtime: number; uid: number }> = []
  for (let at = 0;;) {
    const field = (index: number) =>
      parseInt(text.decode(archive.subarray(at + 6 + index * 8, at + 14 + index * 8)), 16)
    assert.equal(text.decode(archive.subarray(at, at + 6)), "070701")
    const nameSize = field(11)
    const size = field(6)
    const path = text.decode(archive.subarray(at + 110, at + 110 + nameSize - 1))
    if (path === "TRAILER!!!") return rows
    rows.push({ path, mode: field(1), size, mtime: field(5), uid: field(2) })
    at += 110 + nameSize
    at += (4 - (at % 4)) % 4
    at += size + ((4 - (size % 4)) % 4)
  }
}

Deno.test("cpio: sorted entries, zero times and owners, same bytes for the same tree", () => {
  const entries: Array<CpioEntry> = [
    { kind: "file", path: "usr/bin/tool", mode: 0o755, data: new Uint8Array([1, 2, 3]) },
    { kind: "directory", path: "usr", mode: 0o755 },
    { kind: "symlink", path: "bin", target: "usr/bin" },
    { kind: "directory", path: "usr/bin", mode: 0o755 },
    { kind: "char", path: "dev/console", mode: 0o600, major: 5, minor: 1 },
  ]
  const archive = writeCpio(entries)
  assert.deepEqual(writeCpio([...entries].reverse()), archive)
  const rows = readCpio(archive)
  assert.deepEqual(rows.map((row) => row.path), [
    "bin",
    "dev/console",
    "usr",
    "usr/bin",
    "usr/bin/tool",
  ])
  assert.deepEqual(rows.map((row) => row.mode.toString(8)), [
    "120777",
    "20600",
    "40755",
    "40755",
    "100755",
  ])
  assert.ok(rows.every((row) => row.mtime === 0 && row.uid === 0))
  assert.equal(rows.find((row) => row.path === "bin")!.size, "usr/bin".length)
  assert.throws(() => writeCpio([entries[1]!, entries[1]!]), /duplicate/)
})

Deno.test("ELF: the interpreter and DT_NEEDED of a real dynamic executable", async () => {
  // The Deno running this test is a dynamically linked ELF on Linux.
  const dependencies = elfDependencies(await Deno.readFile(Deno.execPath()))
  assert.ok(dependencies !== undefined)
  assert.match(dependencies.interpreter ?? "", /ld-linux-x86-64\.so\.2$/)
  assert.ok(dependencies.needed.includes("libc.so.6"), dependencies.needed.join(" "))
  assert.equal(elfDependencies(new TextEncoder().encode("#!/bin/sh\necho not elf\n")), undefined)
})

Deno.test("modules: dependencies first, built-ins skipped, unknown names rejected", () => {
  const modulesDep = [
    "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko",
    "kernel/lib/crc16.ko:",
    "kernel/fs/mbcache.ko:",
    "kernel/fs/jbd2/jbd2.ko:",
    "kernel/drivers/md/dm-mod.ko:",
    "kernel/drivers/md/dm-snapshot.ko: kernel/drivers/md/dm-bufio.ko kernel/drivers/md/dm-mod.ko",
    "kernel/drivers/md/dm-bufio.ko: kernel/drivers/md/dm-mod.ko",
  ].join("\n")
  const builtin = "kernel/net/packet/af_packet.ko\n"
  const selection = selectModules(
    ["dm_snapshot", "ext4", "af_packet", "dm-mod"],
    modulesDep,
    builtin,
  )
  assert.deepEqual(selection.loadOrder, [
    "kernel/drivers/md/dm-mod.ko",
    "kernel/drivers/md/dm-bufio.ko",
    "kernel/drivers/md/dm-snapshot.ko",
    "kernel/lib/crc16.ko",
    "kernel/fs/mbcache.ko",
    "kernel/fs/jbd2/jbd2.ko",
    "kernel/fs/ext4/ext4.ko",
  ])
  assert.deepEqual(selection.builtin, ["af_packet"])
  assert.throws(() => selectModules(["nope"], modulesDep, builtin), /no module nope/)
})
