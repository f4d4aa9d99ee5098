/**
 * The guest's layer applier, run on this host: layer tars made by independent tools (GNU tar,
 * umoci, Python's tarfile) applied into temporary directories, and the trees compared with what
 * `umoci unpack` makes of the same layers, or with explicit expectations.
 */
import assert from "node:assert/strict"
import { applyLayer, type ApplyLayerSummary } from "../../guest/apply_layer.ts"
import {
  handMadeTar,
  listTree,
  run,
  type TarEntry,
  UmociImage,
  whiteoutSetImage,
} from "../support/layer_trees.ts"

// Owners, device nodes and security.capability need root; elsewhere these tests are ignored.
const ignore = Deno.uid() !== 0

const applyTar = async (tar: string, root: string): Promise<ApplyLayerSummary> => {
  using file = await Deno.open(tar)
  return await applyLayer(file.readable, root)
}

/** A fresh directory for one test, removed after it. */
const withTempDir = async (use: (dir: string) => Promise<void>): Promise<void> => {
  const dir = Deno.makeTempDirSync({ prefix: "apply-layer-" })
  try {
    await use(dir)
  } finally {
    Deno.removeSync(dir, { recursive: true })
  }
}

const assertSameTree = async (actual: string, expected: string) => {
  assert.deepEqual(await listTree(actual), await listTree(expected))
}

const write = (path: string, text: string) => Deno.writeTextFileSync(path, text)

Deno.test({
  name: "applyLayer: a GNU tar layer of a tree made with system tools unpacks as umoci unpacks it",
  ignore,
  fn: () =>
    withTempDir(async (dir) => {
      const source = `${dir}/source`
      const deep = `${source}/${"long-directory-name/".repeat(6)}`
      Deno.mkdirSync(deep, { recursive: true })
      write(`${deep}/${"a-file-with-a-long-name-".repeat(5)}`, "deep\n")
      write(`${source}/plain`, "plain text\n")
      write(`${source}/su`, "setuid\n")
      write(`${source}/ping`, "capable\n")
      write(`${source}/tagged`, "tagged\n")
      Deno.mkdirSync(`${source}/shared`)
      Deno.mkdirSync(`${source}/tmp`)
      run("chown", ["1234:5678", `${source}/su`, `${source}/shared`])
      // chmod after chown: chown clears setuid.
      run("chmod", ["4755", `${source}/su`])
      run("chmod", ["2775", `${source}/shared`])
      run("chmod", ["1777", `${source}/tmp`])
      run("setcap", ["cap_net_raw+ep", `${source}/ping`])
      run("setfattr", ["-n", "user.origin", "-v", "hand made", `${source}/tagged`])
      run("mkfifo", [`${source}/fifo`])
      run("mknod", [`${source}/null`, "c", "1", "3"])
      run("mknod", [`${source}/loop9`, "b", "7", "9"])
      Deno.linkSync(`${source}/plain`, `${source}/plain-link`)
      Deno.symlinkSync("chain-2", `${source}/chain-1`)
      Deno.symlinkSync("plain", `${source}/chain-2`)
      Deno.symlinkSync("/etc/passwd", `${source}/absolute`)
      run("touch", ["-h", "-d", "2021-02-03 04:05:06.789", `${source}/chain-1`, `${source}/su`])
      for (const format of ["posix", "gnu"]) {
        const tar = `${dir}/${format}.tar`
        // GNU tar writes xattrs in pax records only.
        const xattrs = format === "posix" ? ["--xattrs", "--xattrs-include=*"] : []
        run("tar", [
          ...xattrs,
          "--numeric-owner",
          `--format=${format}`,
          "-C",
          source,
          "-cf",
          tar,
          ".",
        ])
        const root = `${dir}/applied-${format}`
        Deno.mkdirSync(root)
        const summary = await applyTar(tar, root)
        const image = new UmociImage(`${dir}/umoci-${format}`)
        image.addLayer(tar)
        await assertSameTree(root, image.unpack())
        assert.equal(summary.whiteouts, 0)
        assert.ok(summary.entries >= 20, `entries applied: ${summary.entries}`)
      }
      const capability = run("getcap", [`${dir}/applied-posix/ping`])
      assert.match(capability, /cap_net_raw=ep/)
      assert.equal(Deno.lstatSync(`${dir}/applied-posix/su`).mode! & 0o7777, 0o4755)
    }),
})

Deno.test({
  name: "applyLayer: the OCI whiteout set, from umoci's diffs and a hand-made layer, as umoci",
  ignore,
  fn: () =>
    withTempDir(async (dir) => {
      const image = whiteoutSetImage(dir)
      const root = `${dir}/applied`
      Deno.mkdirSync(root)
      const summaries = await image.applyLayers(root)
      assert.equal(summaries.length, 3)
      // Layer 2: two whiteouts (etc/deleted, dir-to-file's contents are its own); layer 3: one.
      assert.ok(summaries[1]!.whiteouts >= 1)
      assert.equal(summaries[2]!.whiteouts, 1)
      await assertSameTree(root, image.unpack())
      // What the comparison stands for, spelled out.
      assert.deepEqual([...Deno.readDirSync(`${root}/opaque`)].map((e) => e.name).sort(), [
        "after-marker",
        "before-marker",
      ])
      assert.throws(() => Deno.lstatSync(`${root}/etc/deleted`), Deno.errors.NotFound)
      assert.ok(Deno.lstatSync(`${root}/dir-to-file`).isFile)
      assert.ok(Deno.lstatSync(`${root}/file-to-dir`).isDirectory)
      assert.equal(
        Deno.lstatSync(`${root}/lower/target`).ino,
        Deno.lstatSync(`${root}/hardlink-to-lower`).ino,
      )
      assert.match(run("getcap", [`${root}/bin/ping`]), /cap_net_raw=ep/)
      assert.equal(Deno.lstatSync(`${root}/tagged`).uid, 3_000_000)
      assert.equal(Deno.lstatSync(`${root}/tagged`).mtime?.getTime(), 1600000000500)
    }),
})

Deno.test({
  name: "applyLayer: a layer's own entries survive its whiteouts and opaque markers, wherever",
  ignore,
  fn: () =>
    withTempDir(async (dir) => {
      const root = `${dir}/root`
      Deno.mkdirSync(root)
      await applyTar(
        handMadeTar(dir, "lower.tar", [
          { name: "d/", type: "dir" },
          { name: "d/lower", data: "lower\n" },
          { name: "d/sub/", type: "dir" },
          { name: "d/sub/lower", data: "lower\n" },
          { name: "e/", type: "dir" },
          { name: "e/x", data: "lower x\n" },
          { name: "e/y", data: "lower y\n" },
        ]),
        root,
      )
      const summary = await applyTar(
        handMadeTar(dir, "upper.tar", [
          { name: "d/sub/", type: "dir", mode: 0o700 },
          { name: "d/sub/mine", data: "mine\n" },
          { name: "d/.wh..wh..opq" },
          { name: "d/after", data: "after\n" },
          { name: "e/x", data: "upper x\n" },
          { name: "e/.wh.x" },
          { name: "e/.wh.y" },
          { name: "e/.wh.absent" },
        ]),
        root,
      )
      assert.deepEqual(summary, { entries: 4, bytes: 19, whiteouts: 4 })
      const listing = (await listTree(root)).map((line) => line.split(" ").slice(0, 2).join(" "))
      assert.deepEqual(listing, [
        ". dir",
        "d dir",
        "d/after file",
        "d/sub dir",
        "d/sub/mine file",
        "e dir",
        "e/x file",
      ])
      assert.equal(Deno.readTextFileSync(`${root}/e/x`), "upper x\n")
      // An existing directory's entry updates its metadata only.
      assert.equal(Deno.lstatSync(`${root}/d/sub`).mode! & 0o7777, 0o700)
      // Directories the layer has no entry for keep their times, though their contents changed.
      assert.equal(Deno.lstatSync(`${root}/d`).mtime?.getTime(), 1700000000000)
      assert.equal(Deno.lstatSync(`${root}/e`).mtime?.getTime(), 1700000000000)
    }),
})

Deno.test({
  name: "applyLayer: contents stream through in any chunking, with GNU base-256 numbers",
  ignore,
  fn: () =>
    withTempDir(async (dir) => {
      const big = "0123456789abcdef".repeat(1 << 18) // 4 MiB
      const tar = handMadeTar(dir, "big.tar", [
        { name: "small", data: "x" },
        { name: "big", data: big, uid: 3_000_000 },
        { name: `${"n".repeat(120)}/${"m".repeat(120)}`, data: "long\n" },
        { name: "empty" },
      ], "gnu")
      const bytes = Deno.readFileSync(tar)
      for (const size of [777, 64 * 1024, bytes.length]) {
        const root = `${dir}/root-${size}`
        Deno.mkdirSync(root)
        let offset = 0
        const stream = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (offset >= bytes.length) return controller.close()
            controller.enqueue(bytes.slice(offset, offset + size))
            offset += size
          },
        })
        const summary = await applyLayer(stream, root)
        assert.equal(summary.bytes, big.length + 1 + 5)
        assert.equal(Deno.readTextFileSync(`${root}/big`), big)
        assert.equal(Deno.lstatSync(`${root}/big`).uid, 3_000_000)
        assert.equal(
          Deno.readTextFileSync(`${root}/${"n".repeat(120)}/${"m".repeat(120)}`),
          "long\n",
        )
        assert.equal(Deno.lstatSync(`${root}/empty`).size, 0)
      }
    }),
})

Deno.test({
  name: "applyLayer: absolute entry paths land under the root, as tar puts them",
  ignore,
  fn: () =>
    withTempDir(async (dir) => {
      const root = `${dir}/root`
      Deno.mkdirSync(root)
      await applyTar(
        handMadeTar(dir, "absolute.tar", [
          { name: "/abs/file", data: "inside\n" },
          { name: "/abs/link", type: "hardlink", linkname: "/abs/file" },
        ]),
        root,
      )
      assert.equal(Deno.readTextFileSync(`${root}/abs/link`), "inside\n")
    }),
})

/** Entries that would escape the root or are malformed, and what the error must say. */
const REFUSED: ReadonlyArray<
  { readonly what: string; readonly entries: ReadonlyArray<TarEntry>; readonly error: RegExp }
> = [
  {
    what: "a '..' path",
    entries: [{ name: "../escaped", data: "out\n" }],
    error: /layer entry '\.\.\/escaped' has a '\.\.' component/,
  },
  {
    what: "a file through a symlink the layer made",
    entries: [{ name: "evil", type: "symlink", linkname: "OUTSIDE" }, {
      name: "evil/owned",
      data: "out\n",
    }],
    error: /layer entry 'evil\/owned': its parent 'evil' is a symbolic link/,
  },
  {
    what: "a file through a symlink of a lower layer",
    entries: [{ name: "lower-evil/owned", data: "out\n" }],
    error: /layer entry 'lower-evil\/owned': its parent 'lower-evil' is a symbolic link/,
  },
  {
    what: "a hardlink to a '..' path",
    entries: [{ name: "stolen", type: "hardlink", linkname: "../OUTSIDE/victim" }],
    error: /layer entry 'stolen': its link target is refused: .*'\.\.' component/,
  },
  {
    what: "a hardlink through a symlink",
    entries: [{ name: "stolen", type: "hardlink", linkname: "lower-evil/victim" }],
    error: /layer entry 'stolen': its parent 'lower-evil' is a symbolic link/,
  },
  {
    what: "an entry of a type layers do not hold",
    entries: [{ name: "volume-label", type: "V" }],
    error: /layer entry 'volume-label' has tar type 'V'/,
  },
]

for (const { what, entries, error } of REFUSED) {
  Deno.test({
    name: `applyLayer refuses ${what}, naming the entry, and touches nothing outside`,
    ignore,
    fn: () =>
      withTempDir(async (dir) => {
        const outside = `${dir}/outside`
        Deno.mkdirSync(outside)
        write(`${outside}/victim`, "victim\n")
        const root = `${dir}/root`
        Deno.mkdirSync(root)
        Deno.symlinkSync(outside, `${root}/lower-evil`)
        const named = entries.map((entry) =>
          entry.linkname === "OUTSIDE" ? { ...entry, linkname: outside } : entry
        )
        await assert.rejects(applyTar(handMadeTar(dir, "refused.tar", named), root), error)
        assert.deepEqual([...Deno.readDirSync(outside)].map((entry) => entry.name), ["victim"])
        assert.equal(Deno.lstatSync(`${outside}/victim`).nlink, 1)
      }),
  })
}

Deno.test({
  name: "applyLayer refuses a corrupt header and a truncated layer",
  ignore,
  fn: () =>
    withTempDir(async (dir) => {
      const tar = handMadeTar(dir, "good.tar", [{ name: "first", data: "1" }, {
        name: "second",
        data: "2".repeat(2000),
      }])
      const bytes = Deno.readFileSync(tar)
      const corrupt = bytes.slice()
      corrupt[1024 + 10] = corrupt[1024 + 10]! ^ 0x20 // the second header's name
      Deno.writeFileSync(`${dir}/corrupt.tar`, corrupt)
      Deno.mkdirSync(`${dir}/a`)
      await assert.rejects(
        applyTar(`${dir}/corrupt.tar`, `${dir}/a`),
        /the tar header after 'first' has a bad checksum/,
      )
      Deno.writeFileSync(`${dir}/truncated.tar`, bytes.slice(0, 1024 + 512 + 700))
      Deno.mkdirSync(`${dir}/b`)
      await assert.rejects(
        applyTar(`${dir}/truncated.tar`, `${dir}/b`),
        /the layer ends inside the entry after 'second'; it is truncated/,
      )
    }),
})

Deno.test({
  name: "applyLayer stops when its signal aborts, though the stream never ends",
  ignore,
  fn: () =>
    withTempDir(async (dir) => {
      const tar = Deno.readFileSync(handMadeTar(dir, "part.tar", [{ name: "big", data: "x" }]))
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          // A header promising more than will ever come.
          controller.enqueue(tar.slice(0, 512))
        },
      })
      const abort = new AbortController()
      setTimeout(() => abort.abort("SIGKILL"), 100)
      await assert.rejects(
        applyLayer(stream, dir, { signal: abort.signal }),
        (error) => error === "SIGKILL",
      )
    }),
})

Deno.test({
  name: "applyLayer: whiteouts below a symlink or a file remove nothing and follow nothing",
  ignore,
  fn: () =>
    withTempDir(async (dir) => {
      const outside = `${dir}/outside`
      Deno.mkdirSync(`${outside}/sub`, { recursive: true })
      write(`${outside}/victim`, "victim\n")
      const root = `${dir}/root`
      Deno.mkdirSync(root)
      Deno.symlinkSync(outside, `${root}/evil`)
      write(`${root}/file`, "a file\n")
      const summary = await applyTar(
        handMadeTar(dir, "whiteouts.tar", [
          { name: "evil/.wh.victim" },
          { name: "evil/.wh..wh..opq" },
          { name: "file/.wh.anything" },
          { name: "missing/.wh.anything" },
        ]),
        root,
      )
      assert.deepEqual(summary, { entries: 0, bytes: 0, whiteouts: 4 })
      assert.deepEqual([...Deno.readDirSync(outside)].map((entry) => entry.name).sort(), [
        "sub",
        "victim",
      ])
      assert.equal(Deno.readTextFileSync(`${root}/file`), "a file\n")
    }),
})
