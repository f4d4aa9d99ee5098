/** What the agent runs on: the guest's Deno and the agent's modules, laid out for the guest. */
import { exists } from "./files.ts"
import { REPO_DIR } from "./layout.ts"
import { fail, run } from "./process.ts"

/** A file of the runtime tree (bin/deno, app/...) and where its bytes come from. */
export interface RuntimeFile {
  readonly path: string
  readonly source: string
  readonly mode: number
}

/** The agent's entry module and everything it imports, as paths relative to the repository. */
export const agentSources = async (agent: string): Promise<Array<string>> => {
  if (!(await exists(agent))) {
    fail(`the agent ${agent} does not exist (give another one with --agent FILE)`)
  }
  const info = JSON.parse(
    await run([Deno.execPath(), "info", "--json", "--no-config", "--no-lock", agent]),
  ) as { modules: Array<{ specifier: string; error?: string }> }
  return info.modules.map((module) => {
    if (module.error !== undefined) {
      fail(`the agent cannot load ${module.specifier}: ${module.error}`)
    }
    if (!module.specifier.startsWith("file://")) {
      fail(`the agent imports ${module.specifier}; it may import only local files`)
    }
    const path = decodeURIComponent(new URL(module.specifier).pathname)
    if (!path.startsWith(`${REPO_DIR}/`)) fail(`the agent imports ${path}, outside the repository`)
    return path.slice(REPO_DIR.length + 1)
  }).sort()
}

/** The Linux x86_64 Deno the agent runs on: the one the npm `deno` package installed. */
export const guestDeno = async (): Promise<string> => {
  for (const candidate of ["node_modules/@deno/linux-x64-glibc/deno", "node_modules/deno/deno"]) {
    const path = `${REPO_DIR}/${candidate}`
    const bytes = await Deno.open(path).then(async (file) => {
      const header = new Uint8Array(20)
      await file.read(header)
      file.close()
      return header
    }).catch(() => undefined)
    // An x86_64 ELF executable (e_machine 62), whatever the host is.
    if (bytes !== undefined && bytes[0] === 0x7f && bytes[18] === 62) return path
  }
  return fail("no Linux x86_64 Deno in node_modules (run `npm ci`)")
}

/** The runtime tree: bin/deno and app/<repository paths of the agent's modules>. */
export const runtimeFiles = (
  deno: string,
  agentFiles: ReadonlyArray<string>,
): Array<RuntimeFile> => [
  { path: "bin/deno", source: deno, mode: 0o755 },
  ...agentFiles.map((path) => ({
    path: `app/${path}`,
    source: `${REPO_DIR}/${path}`,
    mode: 0o644,
  })),
]
