/** The command line of `deno task guest`. */
import * as Schema from "effect/Schema"
import { Compression } from "../../src/domain/guest/manifest.ts"
import { GUEST_DIR } from "./layout.ts"
import { fail } from "./process.ts"

export interface Options {
  readonly updatePins: boolean
  readonly out: string
  readonly agent: string
  readonly denoInInitramfs: boolean
  readonly compression: Compression
}

const absolute = (path: string) => (path.startsWith("/") ? path : `${Deno.cwd()}/${path}`)

export const parseOptions = (args: ReadonlyArray<string>): Options => {
  let updatePins = false
  let out = `${GUEST_DIR}/dist`
  let agent = `${GUEST_DIR}/agent.ts`
  let denoInInitramfs = false
  let compression: Compression = "none"
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!
    const value = () => args[++index] ?? fail(`${arg} needs a value`)
    if (arg === "--update-pins") updatePins = true
    else if (arg === "--out") out = absolute(value())
    else if (arg === "--agent") agent = absolute(value())
    else if (arg === "--deno-in-initramfs") denoInInitramfs = true
    else if (arg === "--compression") {
      const chosen = value()
      if (!Schema.is(Compression)(chosen)) fail("--compression is none, gzip or zstd")
      compression = chosen
    } else fail(`unknown option ${arg}`)
  }
  return { updatePins, out, agent, denoInInitramfs, compression }
}
