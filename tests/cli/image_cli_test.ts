/**
 * `transient image ls|rm|pull` as a user runs them: the real entry point in a subprocess, on a
 * store laid out as the original transient lays it out.
 */
import assert from "node:assert/strict"
import { transient } from "../support/run_transient.ts"

const MiB = 1024 * 1024

const place = async (file: string, size: number) => {
  const status = await new Deno.Command("qemu-img", {
    args: ["create", "-q", "-f", "qcow2", file, String(size)],
  }).output()
  assert.ok(status.success)
  await Deno.chmod(file, 0o444)
}

Deno.test("image ls, ls --json, rm and pull from the command line", async () => {
  const root = await Deno.makeTempDir({ prefix: "transient-cli-" })
  await place(`${root}/with%2Ddash`, 20 * 1024 * MiB)
  await place(`${root}/alpine`, 19 * 512)

  const ls = await transient(["image", "ls", "--image-backend", root])
  assert.equal(ls.code, 0, ls.stderr)
  const [header, ...rows] = ls.stdout.trimEnd().split("\n")
  assert.match(header!, /^NAME +VIRT SIZE +REAL SIZE$/)
  assert.equal(rows.length, 2)
  assert.match(rows[0]!, /^alpine {4,}9\.50 KiB +\d+\.\d\d KiB$/)
  assert.match(rows[1]!, /^with-dash +20\.00 GiB +\d+\.\d\d KiB$/)
  // The columns line up under the header.
  assert.equal(rows[1]!.indexOf("20.00 GiB"), header!.indexOf("VIRT SIZE"))

  const json = await transient(["image", "ls", "--json", "--image-backend", root])
  assert.equal(json.code, 0, json.stderr)
  const listed = JSON.parse(json.stdout)
  assert.deepEqual(listed.map((image: { name: string }) => image.name), ["alpine", "with-dash"])
  assert.deepEqual(Object.keys(listed[1]).sort(), [
    "actualSize",
    "firmware",
    "format",
    "name",
    "path",
    "virtualSize",
  ])
  assert.equal(listed[1].path, `${root}/with%2Ddash`)
  assert.equal(listed[1].virtualSize, 20 * 1024 * MiB)
  assert.equal(listed[1].format, "qcow2")
  assert.equal(listed[1].firmware, "bios", "an empty disk has no ESP")

  const source = `${root}.source.qcow2`
  await place(source, 2 * MiB)
  const pull = await transient(["image", "pull", `copied,file=${source}`, "--image-backend", root])
  assert.equal(pull.code, 0, pull.stderr)
  assert.match(pull.stdout, new RegExp(`Pulled 'copied' .*: ${root}/copied`))
  assert.equal((await Deno.stat(`${root}/copied`)).mode! & 0o777, 0o444)

  const bad = await transient(["image", "pull", ",nothing", "--image-backend", root])
  assert.equal(bad.code, 1)
  assert.equal(bad.stderr.trim(), "error: Invalid image spec ',nothing'")

  const rm = await transient([
    "image",
    "rm",
    "with-dash",
    "unknown",
    "copied",
    "--image-backend",
    root,
  ])
  assert.equal(rm.code, 1)
  assert.match(rm.stderr, /error: No image named 'unknown'/)
  // `.identity` holds what `ls` read from the disks (their firmware), kept for the next time.
  assert.deepEqual([...Deno.readDirSync(root)].map((entry) => entry.name).sort(), [
    ".identity",
    ".working",
    "alpine",
  ])
  assert.deepEqual(
    [...Deno.readDirSync(`${root}/.identity`)].map((entry) => entry.name).sort(),
    ["alpine.json"],
    "the records of removed images went with them",
  )
  await Deno.remove(root, { recursive: true })
  await Deno.remove(source)
})

Deno.test("image rm refuses a name that is no image's, such as '..' (the store's parent)", async () => {
  const parent = await Deno.makeTempDir()
  const store = `${parent}/store`
  await Deno.mkdir(store)
  const removed = await transient(["image", "rm", ".."], {
    env: { TRANSIENT_IMAGE_BACKEND: store },
  })
  assert.equal(removed.code, 1)
  assert.equal(removed.stderr, "error: Invalid image name '..' (it may not start with '.')\n")
  assert.ok((await Deno.stat(store)).isDirectory)
  await Deno.remove(parent, { recursive: true })
})
