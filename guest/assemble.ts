/**
 * `deno task guest`: assemble the helper VM's kernel, initramfs and runtime disk from pinned
 * Debian packages into guest/dist (see guest/README.md).
 *
 *   deno task guest                  build (does nothing when guest/dist is up to date)
 *   deno task guest --update-pins    pin the versions apt offers now into guest/pins.json
 *   --out DIR                        write the artifacts to DIR instead of guest/dist
 *   --agent FILE                     package FILE as the agent instead of guest/agent.ts
 *   --deno-in-initramfs              put Deno and the agent in the initramfs, no runtime disk
 *   --compression none|gzip|zstd     how the initramfs is compressed (none by default: under
 *                                    TCG the kernel unpacks a gzip initramfs ~1 s slower)
 *
 * Every program is taken from the pinned packages, and so are the tools the recipe runs
 * (depmod, mke2fs, debugfs, zstd, gzip, through the pinned dynamic loader), so the output
 * depends on the pins and the sources only: the same inputs give the same bytes.
 */
import { readPins } from "./recipe/debs.ts"
import { artifactSums, removeArtifacts, upToDate, writeManifest } from "./recipe/dist.ts"
import { inputsDigest } from "./recipe/inputs.ts"
import { archiveTree, skeletonTree } from "./recipe/initramfs.ts"
import { extractVmlinux } from "./recipe/kernel.ts"
import { addModules } from "./recipe/kernel_modules.ts"
import { PINS_FILE, REPO_DIR } from "./recipe/layout.ts"
import { addLibraries } from "./recipe/libraries.ts"
import { type Options, parseOptions } from "./recipe/options.ts"
import { PACKAGES, updatePins } from "./recipe/packages.ts"
import { RecipeError, run, sha256Hex } from "./recipe/process.ts"
import { agentSources, guestDeno, runtimeFiles } from "./recipe/runtime.ts"
import { makeRuntimeImage } from "./recipe/runtime_image.ts"
import { addScripts, readScripts } from "./recipe/scripts.ts"
import { pinnedTool, unpackAll } from "./recipe/sysroot.ts"
import { addSystemFiles } from "./recipe/system_files.ts"
import { addTools } from "./recipe/tools.ts"

const assemble = async (options: Options) => {
  const pinsText = await Deno.readTextFile(PINS_FILE)
  const pins = await readPins(PINS_FILE, PACKAGES)
  const pinsHash = await sha256Hex(new TextEncoder().encode(pinsText))
  const deno = await guestDeno()
  const agentFiles = await agentSources(options.agent)
  const scripts = await readScripts()
  const inputs = await inputsDigest({ pinsHash, options, agentFiles, scripts, deno })
  if (await upToDate(options.out, inputs)) {
    console.log(`Guest artifacts in ${options.out} are up to date (pins ${pinsHash.slice(0, 12)})`)
    return
  }

  const started = performance.now()
  const { sysroot, kernelRoot, kernelVersion } = await unpackAll(pins.packages, pinsHash)
  const tool = pinnedTool(sysroot)
  const tree = skeletonTree()
  const programs = await addTools(tree, sysroot)
  await addLibraries(tree, sysroot, [...programs, deno])
  const loadOrder = await addModules(tree, kernelRoot, kernelVersion, tool)
  const agentEntry = agentFiles.find((path) => `${REPO_DIR}/${path}` === options.agent)!
  const agent = `/opt/transient/app/${agentEntry}`
  await addSystemFiles(tree, { sysroot, kernelVersion, loadOrder, agent })
  addScripts(tree, scripts)

  const runtime = runtimeFiles(deno, agentFiles)
  await Deno.mkdir(options.out, { recursive: true })
  await removeArtifacts(options.out)
  if (options.denoInInitramfs) {
    for (const file of runtime) {
      tree.file(`opt/transient/${file.path}`, await Deno.readFile(file.source), file.mode)
    }
  } else {
    await makeRuntimeImage(`${options.out}/runtime.img`, runtime, sysroot, tool)
  }
  const initramfs = await archiveTree(tree, options.compression, tool)
  await Deno.writeFile(`${options.out}/initramfs.img`, initramfs)
  const vmlinuz = await Deno.readFile(`${kernelRoot}/boot/vmlinuz-${kernelVersion}`)
  await Deno.writeFile(`${options.out}/vmlinux`, await extractVmlinux(vmlinuz, tool))

  const artifacts = await artifactSums(options.out)
  await writeManifest(options.out, {
    inputs,
    pins: pinsHash,
    kernel: kernelVersion,
    deno: (await run([deno, "--version"])).split("\n")[0]!,
    agent: agentFiles,
    scripts: scripts.map(({ name, sha256 }) => ({ name, sha256 })),
    packages: Object.fromEntries(pins.packages.map((pin) => [pin.name, pin.version])),
    artifacts,
    options: { denoInInitramfs: options.denoInInitramfs, compression: options.compression },
  })
  const seconds = ((performance.now() - started) / 1000).toFixed(1)
  const sizes = Object.entries(artifacts).flatMap(([name, artifact]) =>
    artifact === undefined ? [] : [`${name} ${(artifact.size / 2 ** 20).toFixed(1)} MiB`]
  ).join(", ")
  console.log(`Built guest artifacts in ${options.out} in ${seconds} s: ${sizes}`)
}

if (import.meta.main) {
  try {
    const options = parseOptions(Deno.args)
    await (options.updatePins ? updatePins() : assemble(options))
  } catch (error) {
    if (!(error instanceof RecipeError)) throw error
    console.error(`deno task guest: ${error.message}`)
    Deno.exit(1)
  }
}
