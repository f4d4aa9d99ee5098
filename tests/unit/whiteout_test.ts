/** Layer entry paths: whiteouts, opaque directories and paths that would leave the root. */
import assert from "node:assert/strict"
import { classifyLayerEntry, LayerEntry, layerEntryPath } from "../../src/domain/whiteout.ts"
import { left, right } from "../support/either.ts"

const CLASSIFIED: ReadonlyArray<readonly [string, LayerEntry]> = [
  ["etc/passwd", LayerEntry.Plain({ path: "etc/passwd" })],
  ["./etc/passwd", LayerEntry.Plain({ path: "etc/passwd" })],
  ["usr//lib/./x/", LayerEntry.Plain({ path: "usr/lib/x" })],
  ["./", LayerEntry.Plain({ path: "." })],
  // Taken relative to the root, as tar does.
  ["/etc/passwd", LayerEntry.Plain({ path: "etc/passwd" })],
  ["//etc/", LayerEntry.Plain({ path: "etc" })],
  ["/", LayerEntry.Plain({ path: "." })],
  // Only the prefix makes a whiteout: `.wh.` elsewhere in the name is a plain name.
  ["etc/a.wh.b", LayerEntry.Plain({ path: "etc/a.wh.b" })],
  ["etc/.wh/x", LayerEntry.Plain({ path: "etc/.wh/x" })],
  [".wh.dir/file", LayerEntry.Plain({ path: ".wh.dir/file" })],
  ["etc/.wh.motd", LayerEntry.Whiteout({ path: "etc/.wh.motd", target: "etc/motd" })],
  ["./.wh.opt", LayerEntry.Whiteout({ path: ".wh.opt", target: "opt" })],
  ["a/.wh..hidden", LayerEntry.Whiteout({ path: "a/.wh..hidden", target: "a/.hidden" })],
  ["a/.wh..wh", LayerEntry.Whiteout({ path: "a/.wh..wh", target: "a/.wh" })],
  [
    "var/cache/.wh..wh..opq",
    LayerEntry.OpaqueDirectory({ path: "var/cache/.wh..wh..opq", directory: "var/cache" }),
  ],
  ["./.wh..wh..opq", LayerEntry.OpaqueDirectory({ path: ".wh..wh..opq", directory: "." })],
  [".wh..wh.plnk/123.456", LayerEntry.AufsMetadata({ path: ".wh..wh.plnk/123.456" })],
  [".wh..wh.plnk", LayerEntry.AufsMetadata({ path: ".wh..wh.plnk" })],
  ["x/.wh..wh.aufs", LayerEntry.AufsMetadata({ path: "x/.wh..wh.aufs" })],
]

for (const [raw, expected] of CLASSIFIED) {
  Deno.test(`layer entry ${raw}`, () => {
    assert.deepEqual(right(classifyLayerEntry(raw)), expected)
  })
}

const REFUSED: ReadonlyArray<readonly [string, RegExp]> = [
  ["", /empty path/],
  ["../etc/passwd", /'\.\.' component/],
  ["a/../../b", /'\.\.' component/],
  // Even where it would stay inside: `a` may be a symlink when the entry is applied.
  ["a/../b", /'\.\.' component/],
  ["etc/..", /'\.\.' component/],
  ["a\0b", /NUL/],
  ["etc/.wh.", /whites out ''/],
  ["etc/.wh..", /whites out '\.'/],
  ["etc/.wh...", /whites out '\.\.'/],
]

for (const [raw, problem] of REFUSED) {
  Deno.test(`layer entry refused: ${JSON.stringify(raw)}`, () => {
    assert.match(left(classifyLayerEntry(raw)), problem)
  })
}

Deno.test("layerEntryPath serves hardlink targets too: the same rules, without whiteouts", () => {
  assert.equal(right(layerEntryPath("./usr/bin/.wh.x")), "usr/bin/.wh.x")
  assert.match(left(layerEntryPath("../../etc/shadow")), /'\.\.' component/)
})
