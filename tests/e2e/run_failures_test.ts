/**
 * `transient run` when QEMU will not start: an error in QEMU's own words and exit status 1, not a
 * VM that "powered off"; nothing left running.
 */
import assert from "node:assert/strict"
import { transient } from "../support/run_transient.ts"

Deno.test("run with --forward to a taken port exits 1 and names the port", async () => {
  const dir = await Deno.makeTempDir()
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 })
  try {
    const image = `${dir}/blank.qcow2`
    const created = await new Deno.Command("qemu-img", {
      args: ["create", "-q", "-f", "qcow2", image, "16M"],
    }).output()
    assert.ok(created.success)
    const port = (taken.addr as Deno.NetAddr).port
    const result = await transient([
      "run",
      image,
      "--accel",
      "tcg",
      "--forward",
      `${port}:22`,
      "--timeout",
      "60",
    ])
    assert.equal(result.code, 1, result.stderr)
    assert.match(
      result.stderr,
      new RegExp(`Could not set up host forwarding rule 'tcp:127\\.0\\.0\\.1:${port}-:22'`),
    )
    assert.doesNotMatch(result.stderr, /powered off/)
    assert.equal(result.stderr.trim().split("\n").length, 1, "one line")
  } finally {
    taken.close()
    await Deno.remove(dir, { recursive: true })
  }
})
