/** The table `transient image ls` prints, without a store: one row per image, names escaped. */
import assert from "node:assert/strict"
import { imageTable } from "../../src/cli/image_command.ts"

Deno.test("image ls shows one row per image, control characters in a name escaped", () => {
  const table = imageTable([{
    name: "two\nlines",
    path: "/store/two%0Alines",
    format: "qcow2",
    virtualSize: 1024 ** 3,
    actualSize: 1024 ** 2,
  }])
  assert.deepEqual(table.split("\n").map((line) => line.split("  ")[0]), ["NAME", "two\\x0alines"])
})
