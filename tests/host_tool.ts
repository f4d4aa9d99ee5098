/** Run a host tool (qemu-img, sfdisk, debugfs...) with an argument array; it must succeed. */
import assert from "node:assert/strict"

/** Returns the tool's stdout; a non-zero exit fails the test with its stderr. */
export const tool = async (...argv: [string, ...Array<string>]): Promise<string> => {
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output()
  const text = new TextDecoder()
  assert.equal(output.code, 0, `${argv.join(" ")}: ${text.decode(output.stderr)}`)
  return text.decode(output.stdout)
}
