/**
 * The release build: one executable, `dist/transient`, with the helper VM's kernel, initramfs and
 * runtime disk embedded. Run with `deno task compile` after `deno task guest`.
 *
 * `deno compile` needs its `denort` base runtime: it downloads it, or takes the file that
 * `DENORT_BIN` names.
 */
const root = new URL("..", import.meta.url).pathname
const output = `${root}dist/transient`
const guestDir = `${root}guest/dist`

const fail = (message: string): never => {
  console.error(`error: ${message}`)
  Deno.exit(1)
}

try {
  await Deno.stat(`${guestDir}/manifest.json`)
} catch {
  fail(`the guest artifacts are missing from ${guestDir}: run \`deno task guest\` first`)
}

const args = [
  "compile",
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-env",
  "--allow-net",
  "--allow-sys",
  "--allow-ffi",
  "--include",
  guestDir,
  "--output",
  output,
  `${root}main.ts`,
]
const child = new Deno.Command(Deno.execPath(), { args, stdout: "inherit", stderr: "piped" })
  .spawn()
const stderr = new TextDecoder().decode((await child.output()).stderr)
const status = await child.status

if (!status.success) {
  if (/denort/i.test(stderr) && /(download|error sending request|dns|connect)/i.test(stderr)) {
    fail(
      "deno compile could not download its denort runtime (no access to dl.deno.land); " +
        "set DENORT_BIN to a local denort binary of the same Deno version and run again",
    )
  }
  console.error(stderr.trimEnd())
  fail("deno compile failed")
}
console.log(`Built ${output}`)
