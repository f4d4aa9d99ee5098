/**
 * Debian's `docker-registry` (CNCF distribution) for tests and benchmarks: started on a free
 * port of 127.0.0.1 with its config and storage under a directory of the caller's, optionally
 * with htpasswd (Basic) auth; and the checks of what a store holds after a pull.
 */
import assert from "node:assert/strict"

export interface DockerRegistry {
  /** `127.0.0.1:PORT`. */
  readonly host: string
  /** Where it keeps its blobs (tests tamper with them there). */
  readonly storage: string
  /** Stop it, and remove its storage. */
  readonly stop: () => Promise<void>
}

const freePort = () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 })
  const port = (listener.addr as Deno.NetAddr).port
  listener.close()
  return port
}

/** A registry started empty in a new directory under `parent`, answering once it is up. */
export const startDockerRegistry = async (
  parent: string,
  options: { readonly htpasswd?: string } = {},
): Promise<DockerRegistry> => {
  const port = freePort()
  const dir = await Deno.makeTempDir({ dir: parent, prefix: "registry-" })
  const storage = `${dir}/storage`
  const config = `${dir}/config.yml`
  await Deno.writeTextFile(
    config,
    [
      "version: 0.1",
      "log:",
      "  level: error",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${storage}`,
      "http:",
      `  addr: 127.0.0.1:${port}`,
      // Fixed, so that it does not warn about making one up.
      "  secret: transient-test",
      ...(options.htpasswd
        ? ["auth:", "  htpasswd:", "    realm: transient", `    path: ${options.htpasswd}`]
        : []),
    ].join("\n") + "\n",
  )
  const child = new Deno.Command("docker-registry", {
    args: ["serve", config],
    stdout: "null",
    stderr: "null",
  }).spawn()
  const host = `127.0.0.1:${port}`
  for (let i = 0; i < 100; i++) {
    const ready = await fetch(`http://${host}/v2/`).then(
      (response) => (response.body?.cancel(), true),
      () => false,
    )
    if (ready) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return {
    host,
    storage,
    stop: async () => {
      child.kill("SIGTERM")
      await child.status
      await Deno.remove(dir, { recursive: true })
    },
  }
}

/** The images a store holds (not its hidden directories); fails on anything half-written. */
export const storeImages = async (root: string): Promise<ReadonlyArray<string>> => {
  const names: Array<string> = []
  for await (const entry of Deno.readDir(root)) {
    if (!entry.name.startsWith(".")) names.push(entry.name)
  }
  for await (const entry of Deno.readDir(`${root}/.working`)) {
    assert.match(entry.name, /\.lock$/, `left in .working: ${entry.name}`)
  }
  return names.sort()
}

/** Whether qemu-img finds the two images' contents identical (`b` is qcow2). */
export const identicalImages = async (a: string, b: string, aFormat = "qcow2") =>
  (await new Deno.Command("qemu-img", {
    args: ["compare", "-q", "-f", aFormat, "-F", "qcow2", a, b],
  })
    .output()).code === 0
