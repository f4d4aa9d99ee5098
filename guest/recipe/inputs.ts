/**
 * The inputs digest: one sha256 over everything the artifacts are made from (the pins, the
 * options that change bytes, the recipe's own files, the guest scripts, the agent's modules and
 * the guest Deno). Artifacts listed with the same digest need not be made again.
 */
import { GUEST_DIR, REPO_DIR } from "./layout.ts"
import type { Options } from "./options.ts"
import { sha256Hex } from "./process.ts"
import type { ScriptFile } from "./scripts.ts"

/** The recipe's files outside guest/recipe, as paths relative to the repository. */
const RECIPE_FILES = ["guest/assemble.ts", "guest/init", "src/domain/guest/manifest.ts"]

const fileHash = async (path: string) => sha256Hex(await Deno.readFile(`${REPO_DIR}/${path}`))

export const inputsDigest = async (inputs: {
  readonly pinsHash: string
  readonly options: Options
  /** The agent's modules, relative to the repository. */
  readonly agentFiles: ReadonlyArray<string>
  readonly scripts: ReadonlyArray<ScriptFile>
  /** The guest Deno executable. */
  readonly deno: string
}): Promise<string> => {
  const recipe: Array<readonly [string, string]> = []
  const recipeDir = [...Deno.readDirSync(`${GUEST_DIR}/recipe`)].map((entry) =>
    `guest/recipe/${entry.name}`
  )
  for (const path of [...RECIPE_FILES, ...recipeDir]) recipe.push([path, await fileHash(path)])
  for (const script of inputs.scripts) recipe.push([`guest/scripts/${script.name}`, script.sha256])
  recipe.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const lines = [
    `pins ${inputs.pinsHash}`,
    `options ${JSON.stringify(inputs.options, ["denoInInitramfs", "compression"])}`,
    ...recipe.map(([path, hash]) => `${path} ${hash}`),
  ]
  for (const file of inputs.agentFiles) lines.push(`agent:${file} ${await fileHash(file)}`)
  lines.push(`deno ${await sha256Hex(await Deno.readFile(inputs.deno))}`)
  return sha256Hex(new TextEncoder().encode(lines.join("\n")))
}
