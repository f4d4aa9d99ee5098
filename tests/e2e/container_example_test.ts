/**
 * examples/debian-from-container as its README says, pointed at a mirror registry: the Debian
 * image it ADDs is made here from the root filesystem the other Debian examples use
 * (mmdebstrap's, cached), as a one-layer OCI image by umoci, pushed by skopeo to a local
 * `docker-registry`. The build needs no host tool but transient and QEMU, and its image boots to
 * a login prompt under `transient run`.
 *
 * Needs mmdebstrap and Debian's mirror, as the other Debian examples; skipped when the mirror
 * cannot be reached.
 */
import assert from "node:assert/strict"
import { makeDebianRootfs } from "../../examples/debian-bootable/make_rootfs.ts"
import { mirror, mirrorProblem } from "../support/debian_mirror.ts"
import { startDockerRegistry } from "../support/docker_registry.ts"
import * as Host from "../support/host.ts"
import { run } from "../support/layer_trees.ts"
import { ROOT, tcgBuildArgs, transient } from "../support/run_transient.ts"

const EXAMPLE = `${ROOT}examples/debian-from-container`

if (mirrorProblem) console.warn(`Skipping examples/debian-from-container: ${mirrorProblem}`)

const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`

Deno.test({
  name: "examples/debian-from-container, from a mirror registry, boots to a login prompt",
  ignore: mirrorProblem !== undefined,
  fn: async () => {
    const work = await Deno.makeTempDir({ prefix: "transient-e2e-container-example-" })
    const env = { TRANSIENT_IMAGE_BACKEND: `${work}/store`, TRANSIENT_CACHE_DIR: `${work}/cache` }
    const registry = await startDockerRegistry(work)
    try {
      // debian:bookworm for the mirror: mmdebstrap's minimal system as one layer.
      const started = performance.now()
      const rootfs = `${work}/rootfs.tar.gz`
      await makeDebianRootfs(rootfs, mirror)
      // -f: the archive is a hard link to the cached one, which stays.
      await Host.tool("gzip", "-d", "-f", rootfs)
      const layout = `${work}/oci`
      run("umoci", ["init", "--layout", layout])
      run("umoci", ["new", "--image", `${layout}:bookworm`])
      run("umoci", ["raw", "add-layer", "--image", `${layout}:bookworm`, `${work}/rootfs.tar`])
      const reference = `${registry.host}/library/debian:bookworm`
      run("skopeo", [
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        `oci:${layout}:bookworm`,
        `docker://${reference}`,
      ])
      console.log(`debian-from-container: its base image in the registry in ${seconds(started)}`)

      // The example as it is, its ADD pointed at the mirror, as its README says to.
      const context = `${work}/context`
      await Deno.mkdir(context)
      for await (const entry of Deno.readDir(EXAMPLE)) {
        await Deno.copyFile(`${EXAMPLE}/${entry.name}`, `${context}/${entry.name}`)
      }
      const imagefile = await Deno.readTextFile(`${context}/Imagefile`)
      assert.match(imagefile, /^ADD docker:\/\/debian:bookworm \/$/m)
      await Deno.writeTextFile(
        `${context}/Imagefile`,
        imagefile.replace("docker://debian:bookworm", `docker://${reference}`),
      )
      const building = performance.now()
      const built = await transient(
        tcgBuildArgs(context, "--plain-http", "--name", "debian-from-container"),
        { env },
      )
      assert.equal(built.code, 0, built.stderr + built.stdout.slice(-4000))
      console.log(`debian-from-container: built in ${seconds(building)}`)

      const inspected = await transient(["image", "inspect", "--json", "debian-from-container"], {
        env,
      })
      assert.equal(inspected.code, 0, inspected.stderr)
      const [origin] = JSON.parse(inspected.stdout).containerImages
      assert.equal(origin.source, `docker://${reference}`)
      assert.equal(origin.platform, "linux/amd64")

      const booting = performance.now()
      const log = `${work}/console.log`
      const booted = await transient(
        [
          "run",
          "debian-from-container",
          "--accel",
          "tcg",
          "--no-network",
          "--until",
          "login:",
          "--timeout",
          "600",
          "--console-log",
          log,
        ],
        { env },
      )
      assert.equal(booted.code, 0, booted.stderr)
      console.log(`debian-from-container: login prompt in ${seconds(booting)}`)
      assert.match(await Deno.readTextFile(log), /^debian login: /m)
      assert.deepEqual(await Host.qemuProcessesWith("overlay.qcow2"), [], "no QEMU is left")
    } finally {
      await registry.stop()
      await Deno.remove(work, { recursive: true })
    }
  },
})
