/**
 * A kept layer's backing name, rewritten in place by the step cache, on overlays qemu-img itself
 * makes: the file is byte for byte what `qemu-img rebase -u -F qcow2` makes of it (so its digest
 * is the same either way), and a header the rewrite does not cover is left untouched.
 */
import assert from "node:assert/strict"
import * as Effect from "effect/Effect"
import { rewriteBackingName } from "../../src/layers/cache/layer_files.ts"
import { tool } from "../support/host_tool.ts"
import { qcow2File } from "../support/qcow2_files.ts"

const PARENT = `${"c".repeat(64)}.qcow2`

/** An overlay of a 1 MiB qcow2, written to, named by the absolute path a build's would have. */
const overlay = async (dir: string, name: string, ...options: Array<string>) => {
  const base = await qcow2File(`${dir}/${name}-under-a-long-work-directory-name.qcow2`)
  const path = `${dir}/${name}.qcow2`
  await tool("qemu-img", "create", "-q", "-f", "qcow2", ...options, "-b", base, "-F", "qcow2", path)
  await tool("qemu-io", "-c", "write -P 7 0 128k", path)
  return path
}

/** Run `body` in a temporary directory, removed after it. */
const inTempDir = (body: (dir: string) => Promise<void>) => async () => {
  const dir = await Deno.makeTempDir({ prefix: "transient-backing-" })
  try {
    await body(dir)
  } finally {
    await Deno.remove(dir, { recursive: true })
  }
}

Deno.test(
  "the rewrite writes the bytes qemu-img rebase -u does (qcow2 v3 and v2)",
  inTempDir(async (dir) => {
    for (const [name, options] of [["v3", []], ["v2", ["-o", "compat=0.10"]]] as const) {
      const path = await overlay(dir, name, ...options)
      await Deno.copyFile(path, `${path}.qemu-img`)
      await tool("qemu-img", "rebase", "-u", "-b", PARENT, "-F", "qcow2", `${path}.qemu-img`)
      assert.equal(await Effect.runPromise(rewriteBackingName(path, PARENT)), true, name)
      assert.deepEqual(await Deno.readFile(path), await Deno.readFile(`${path}.qemu-img`), name)
      const info = JSON.parse(await tool("qemu-img", "info", "--output=json", "-U", path))
      assert.equal(info["backing-filename"], PARENT)
    }
  }),
)

Deno.test(
  "a qcow2 without a backing file is left untouched, for qemu-img to rebase",
  inTempDir(async (dir) => {
    const path = await qcow2File(`${dir}/standalone.qcow2`)
    const before = await Deno.readFile(path)
    assert.equal(await Effect.runPromise(rewriteBackingName(path, PARENT)), false)
    assert.deepEqual(await Deno.readFile(path), before)
  }),
)

Deno.test(
  "a layer whose file is gone fails the rewrite",
  inTempDir(async (dir) => {
    const result = await Effect.runPromise(Effect.either(rewriteBackingName(`${dir}/gone`, PARENT)))
    assert.equal(result._tag, "Left")
  }),
)
