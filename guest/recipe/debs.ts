/**
 * Pinned Debian packages: reading and refreshing the pins, fetching the .debs into the cache
 * (verified against their sha256) and unpacking them.
 */
import { fail, run, sha256Hex } from "./process.ts"

export interface Pin {
  readonly name: string
  readonly version: string
  readonly url: string
  readonly size: number
  readonly sha256: string
}

export interface Pins {
  readonly packages: ReadonlyArray<Pin>
}

/** Read the pins file and check it pins exactly `names` (in any order). */
export const readPins = async (path: string, names: ReadonlyArray<string>): Promise<Pins> => {
  const pins = JSON.parse(await Deno.readTextFile(path)) as Pins
  const missing = names.filter((name) => !pins.packages.some((pin) => pinFor(pin, name)))
  if (missing.length > 0) {
    fail(`${path} does not pin ${missing.join(", ")}; run \`deno task guest --update-pins\``)
  }
  return pins
}

/** Whether `pin` pins the requested package (a metapackage is pinned as its dependency). */
export const pinFor = (pin: Pin, requested: string): boolean =>
  requested === "linux-image-amd64"
    ? /^linux-image-[\d.]+-\d+-amd64$/.test(pin.name)
    : pin.name === requested

/**
 * Resolve each package name to the version apt offers now, with its download URL and sha256.
 * A metapackage such as linux-image-amd64 is replaced by the package it depends on.
 */
export const resolvePins = async (names: ReadonlyArray<string>): Promise<Pins> => {
  const packages: Array<Pin> = []
  for (const requested of names) {
    const name = requested === "linux-image-amd64" ? await kernelPackage() : requested
    const show = await run(["apt-cache", "show", "--no-all-versions", name])
    const version = /^Version: (.+)$/m.exec(show)?.[1]
    if (version === undefined) fail(`apt-cache knows no version of ${name}`)
    const uris = await run(["apt-get", "download", "--print-uris", `${name}=${version}`])
    const match = /^'([^']+)' \S+ (\d+) SHA256:([0-9a-f]{64})$/m.exec(uris)
    if (match === null) fail(`apt-get gave no download URL for ${name}=${version}`)
    packages.push({
      name,
      version,
      url: match[1]!,
      size: Number(match[2]),
      sha256: match[3]!,
    })
  }
  return { packages }
}

const kernelPackage = async (): Promise<string> => {
  const depends = await run(["apt-cache", "depends", "linux-image-amd64"])
  const name = /Depends: (linux-image-[\d.]+-\d+-amd64)$/m.exec(depends)?.[1]
  if (name === undefined) fail("linux-image-amd64 depends on no versioned kernel package")
  return name
}

/** The cached .deb of `pin`, downloaded first if missing; its sha256 is checked either way. */
export const fetchDeb = async (pin: Pin, cacheDir: string): Promise<string> => {
  const path = `${cacheDir}/${pin.name}_${pin.version.replace(/:/g, "%3a")}_amd64.deb`
  let bytes: Uint8Array
  let downloaded = false
  try {
    bytes = await Deno.readFile(path)
  } catch {
    downloaded = true
    console.log(`fetching ${pin.url}`)
    const response = await fetch(pin.url)
    if (!response.ok) {
      fail(
        `cannot fetch ${pin.url}: HTTP ${response.status}; the mirror may have dropped this ` +
          "version, run `deno task guest --update-pins`",
      )
    }
    bytes = new Uint8Array(await response.arrayBuffer())
  }
  const actual = await sha256Hex(bytes)
  if (actual !== pin.sha256) {
    fail(`${pin.name} ${pin.version}: sha256 is ${actual}, the pin says ${pin.sha256}`)
  }
  if (downloaded) {
    await Deno.mkdir(cacheDir, { recursive: true })
    await Deno.writeFile(`${path}.part`, bytes)
    await Deno.rename(`${path}.part`, path)
  }
  return path
}

/** Unpack the data of `deb` into `dir` (created; files from several packages merge). */
export const unpackDeb = async (deb: string, dir: string): Promise<void> => {
  await Deno.mkdir(dir, { recursive: true })
  await run(["dpkg-deb", "-x", deb, dir])
}
