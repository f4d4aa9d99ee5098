/**
 * `deno task guest` is reproducible and cached: two builds into different directories give the
 * same bytes, and a build over up-to-date artifacts does nothing and says so.
 */
import assert from "node:assert/strict"
import { buildStandInGuest } from "./stand_in_guest.ts"

const buildGuest = buildStandInGuest

const sha256 = async (path: string) =>
  Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", await Deno.readFile(path))),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("")

Deno.test("two guest builds give the same bytes; a third does nothing", async () => {
  const root = await Deno.makeTempDir({ prefix: "transient-guest-repro-" })
  try {
    console.log(await buildGuest(`${root}/a`))
    console.log(await buildGuest(`${root}/b`))
    const names = [...Deno.readDirSync(`${root}/a`)].map((entry) => entry.name).sort()
    assert.deepEqual(names, ["initramfs.img", "manifest.json", "runtime.img", "vmlinux"])
    for (const name of names) {
      assert.equal(await sha256(`${root}/a/${name}`), await sha256(`${root}/b/${name}`), name)
    }
    // The manifest's sums are those of the files beside it.
    const manifest = JSON.parse(await Deno.readTextFile(`${root}/a/manifest.json`))
    for (const name of ["vmlinux", "initramfs.img", "runtime.img"]) {
      assert.equal(manifest.artifacts[name].sha256, await sha256(`${root}/a/${name}`), name)
    }
    const before = (await Deno.stat(`${root}/a/initramfs.img`)).mtime
    const again = await buildGuest(`${root}/a`)
    assert.match(again, /^Guest artifacts in .* are up to date \(pins [0-9a-f]{12}\)$/)
    assert.deepEqual((await Deno.stat(`${root}/a/initramfs.img`)).mtime, before)
  } finally {
    await Deno.remove(root, { recursive: true })
  }
})
