import assert from "node:assert/strict"
import { describeTreeChange, diffTrees, type TreeEntry } from "../../src/domain/tree_diff.ts"

/** A directory or symlink: no content. */
const node = (path: string, type: "directory" | "symlink", target?: string): TreeEntry => ({
  path,
  type,
  mode: 0o755,
  uid: 0,
  gid: 0,
  ...(target === undefined ? {} : { target }),
  xattrs: {},
  mtime: "1700000000000000000",
})

const file = (path: string, overrides: Partial<TreeEntry> = {}): TreeEntry => ({
  path,
  type: "file",
  mode: 0o644,
  uid: 0,
  gid: 0,
  size: 3,
  sha256: "a".repeat(64),
  xattrs: {},
  mtime: "1700000000000000000",
  ...overrides,
})

Deno.test("identical trees have no differences, whatever the order of their listings", () => {
  const tree = [file("etc/motd"), file("etc/hostname"), node("bin", "directory")]
  assert.deepEqual(diffTrees(tree, [...tree].reverse()), [])
})

Deno.test("each property of a path is named when it alone changes", () => {
  const base = file("f", { xattrs: { "user.a": "01" } })
  const cases: Array<[Partial<TreeEntry>, string]> = [
    [{ sha256: "b".repeat(64) }, "~ f: content (3 → 3 bytes)"],
    [{ size: 4, sha256: "b".repeat(64) }, "~ f: content (3 → 4 bytes)"],
    [{ mode: 0o4755 }, "~ f: mode 0644 → 4755"],
    [{ uid: 1000 }, "~ f: owner 0:0 → 1000:0"],
    [{ xattrs: { "user.a": "02" } }, "~ f: xattrs user.a"],
    [{ xattrs: {} }, "~ f: xattrs user.a"],
    [
      { xattrs: { "user.a": "01", "security.capability": "00" } },
      "~ f: xattrs security.capability",
    ],
    [{ mtime: "1700000000000000001" }, "~ f: mtime"],
  ]
  for (const [override, line] of cases) {
    const changes = diffTrees([base], [{ ...base, ...override }])
    assert.deepEqual(changes.map(describeTreeChange), [line], JSON.stringify(override))
  }
})

Deno.test("added, removed, a new type, and several changes of one path, in path order", () => {
  const before = [
    file("a"),
    node("link", "symlink", "a"),
    node("z", "directory"),
    file("gone"),
  ]
  const after = [
    file("a", { mode: 0o600, uid: 1, gid: 1 }),
    node("link", "symlink", "b"),
    file("z"),
    file("new"),
  ]
  assert.deepEqual(diffTrees(before, after).map(describeTreeChange), [
    "~ a: mode 0644 → 0600, owner 0:0 → 1:1",
    "- gone",
    "~ link: target a → b",
    "+ new",
    "~ z: type directory → file",
  ])
})
