/**
 * Container image layers for tests, made and read by independent tools: hand-made layer tars
 * (Python's tarfile), OCI layouts made by umoci (the reference unpacker), the OCI whiteout set,
 * and a tree listing that says everything a layer sets, comparable as text.
 */
import { applyLayer, type ApplyLayerSummary } from "../../guest/apply_layer.ts"
import { systemProgram } from "./system_program.ts"

const makeTar = new URL("./make_layer_tar.py", import.meta.url).pathname

/** Run a system program; it must succeed. Its stdout. */
export const run = (program: string, args: ReadonlyArray<string>): string => {
  const { success, stdout, stderr } = new Deno.Command(systemProgram(program), { args: [...args] })
    .outputSync()
  const text = new TextDecoder()
  if (!success) throw new Error(`${program} ${args.join(" ")}: ${text.decode(stderr)}`)
  return text.decode(stdout)
}

export interface TarEntry {
  readonly name: string
  readonly type?: string
  readonly data?: string
  readonly mode?: number
  readonly uid?: number
  readonly gid?: number
  readonly mtime?: number
  readonly linkname?: string
  readonly devmajor?: number
  readonly devminor?: number
  readonly pax?: Record<string, string>
}

/** A layer tar written by Python's tarfile. */
export const handMadeTar = (
  dir: string,
  name: string,
  entries: ReadonlyArray<TarEntry>,
  format: "pax" | "gnu" | "ustar" = "pax",
): string => {
  const path = `${dir}/${name}`
  Deno.writeTextFileSync(`${path}.json`, JSON.stringify(entries))
  run("python3", [makeTar, format, path, `${path}.json`])
  return path
}

/** The tree under `root`, one line per path: everything a layer sets, comparable as text. */
export const listTree = async (root: string): Promise<Array<string>> => {
  const xattrs = new Map<string, Array<string>>()
  let current = ""
  const dump = run("getfattr", [
    "--absolute-names",
    "-R",
    "-P",
    "-h",
    "-d",
    "-m",
    "-",
    "-e",
    "hex",
    root,
  ])
  for (const line of dump.split("\n")) {
    if (line.startsWith("# file: ")) current = line.slice("# file: ".length)
    else if (line !== "") xattrs.set(current, [...(xattrs.get(current) ?? []), line])
  }
  const lines: Array<string> = []
  const walk = async (relative: string) => {
    const absolute = relative === "." ? root : `${root}/${relative}`
    const info = Deno.lstatSync(absolute)
    const type = info.isSymlink
      ? `symlink -> ${Deno.readLinkSync(absolute)}`
      : info.isDirectory
      ? "dir"
      : info.isFile
      ? `file ${info.size} ${await sha256(absolute)}`
      : info.isFifo
      ? "fifo"
      : info.isCharDevice
      ? `char ${info.rdev}`
      : info.isBlockDevice
      ? `block ${info.rdev}`
      : "other"
    const mode = (info.mode! & 0o7777).toString(8)
    // A directory's mtime at the root is the unpacker's own; below, the layer's.
    const mtime = relative === "." ? "" : ` mtime ${info.mtime?.getTime()}`
    const attributes = (xattrs.get(absolute) ?? []).sort().join(",")
    lines.push(
      `${relative} ${type} mode ${mode} owner ${info.uid}:${info.gid} links ${info.nlink}` +
        `${mtime} xattrs ${attributes}`,
    )
    if (info.isDirectory) {
      const names = [...Deno.readDirSync(absolute)].map((entry) => entry.name).sort()
      for (const name of names) await walk(relative === "." ? name : `${relative}/${name}`)
    }
  }
  await walk(".")
  return lines
}

const sha256 = async (path: string): Promise<string> => {
  const digest = await crypto.subtle.digest("SHA-256", Deno.readFileSync(path))
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("")
}

/** An OCI layout made and read by umoci: the reference unpacker. */
export class UmociImage {
  readonly #layout: string
  readonly #work: string
  readonly #image: string

  constructor(work: string) {
    this.#work = work
    this.#layout = `${work}/oci`
    this.#image = `${this.#layout}:test`
    run("umoci", ["init", "--layout", this.#layout])
    run("umoci", ["new", "--image", this.#image])
  }

  /** The image as skopeo names it: `oci:LAYOUT:test`. */
  get transport(): string {
    return `oci:${this.#image}`
  }

  /** A layer of what `change` does to the image's root filesystem, computed by umoci. */
  commit(change: (rootfs: string) => void): void {
    const bundle = `${this.#work}/bundle-commit`
    run("umoci", ["unpack", "--image", this.#image, bundle])
    change(`${bundle}/rootfs`)
    run("umoci", ["repack", "--image", this.#image, bundle])
    Deno.removeSync(bundle, { recursive: true })
  }

  addLayer(tar: string): void {
    run("umoci", ["raw", "add-layer", "--image", this.#image, tar])
  }

  /** The image's root filesystem as umoci unpacks it. */
  unpack(): string {
    const bundle = `${this.#work}/bundle-reference`
    run("umoci", ["unpack", "--image", this.#image, bundle])
    return `${bundle}/rootfs`
  }

  /** The image's layer blobs in order (gzip-compressed, as umoci writes them). */
  layers(): Array<string> {
    const read = (digest: string) =>
      JSON.parse(Deno.readTextFileSync(`${this.#layout}/blobs/${digest.replace(":", "/")}`))
    const index = JSON.parse(Deno.readTextFileSync(`${this.#layout}/index.json`))
    const manifest = read(index.manifests[0].digest)
    return manifest.layers.map((layer: { digest: string }) =>
      `${this.#layout}/blobs/${layer.digest.replace(":", "/")}`
    )
  }

  /** Apply the image's layers in order onto `root` with the applier under test. */
  async applyLayers(root: string): Promise<Array<ApplyLayerSummary>> {
    const summaries: Array<ApplyLayerSummary> = []
    for (const blob of this.layers()) {
      using file = await Deno.open(blob)
      const stream = file.readable.pipeThrough(new DecompressionStream("gzip"))
      summaries.push(await applyLayer(stream, root))
    }
    return summaries
  }
}

/**
 * The OCI whiteout set as an image of three layers: a file deleted in layer 2, an opaque
 * directory with this layer's entries before and after its marker, a directory replaced by a file
 * and a file by a directory, a directory replaced by a symlink, a hardlink to a lower-layer file,
 * setuid and security.capability, a FIFO and a device node, a symlink chain, pax xattrs, a
 * fractional mtime and a large uid. Layers 1 and 2 are umoci's diffs, layer 3 is hand-made.
 */
export const whiteoutSetImage = (dir: string): UmociImage => {
  const image = new UmociImage(dir)
  image.commit((rootfs) => {
    for (const directory of ["etc", "opaque/sub", "dir-to-file", "lower", "bin", "dev"]) {
      Deno.mkdirSync(`${rootfs}/${directory}`, { recursive: true })
    }
    write(`${rootfs}/etc/kept`, "kept\n")
    write(`${rootfs}/etc/deleted`, "deleted in layer 2\n")
    write(`${rootfs}/opaque/lower-1`, "hidden by the opaque marker\n")
    write(`${rootfs}/opaque/sub/lower-2`, "hidden too\n")
    write(`${rootfs}/dir-to-file/inside`, "goes with its directory\n")
    write(`${rootfs}/file-to-dir`, "becomes a directory\n")
    write(`${rootfs}/lower/target`, "linked from layer 3\n")
    write(`${rootfs}/bin/ping`, "ping\n")
    write(`${rootfs}/bin/su`, "su\n")
    Deno.mkdirSync(`${rootfs}/dir-to-symlink/sub`, { recursive: true })
    write(`${rootfs}/dir-to-symlink/inside`, "goes with its directory\n")
    run("setcap", ["cap_net_raw+ep", `${rootfs}/bin/ping`])
    run("chmod", ["4755", `${rootfs}/bin/su`])
  })
  image.commit((rootfs) => {
    Deno.removeSync(`${rootfs}/etc/deleted`)
    Deno.removeSync(`${rootfs}/dir-to-file`, { recursive: true })
    write(`${rootfs}/dir-to-file`, "was a directory\n")
    Deno.removeSync(`${rootfs}/file-to-dir`)
    Deno.mkdirSync(`${rootfs}/file-to-dir`)
    write(`${rootfs}/file-to-dir/inside`, "was a file\n")
    // umoci then writes whiteouts below the symlink, for what the directory held.
    Deno.removeSync(`${rootfs}/dir-to-symlink`, { recursive: true })
    Deno.symlinkSync("/etc", `${rootfs}/dir-to-symlink`)
    run("mkfifo", [`${rootfs}/dev/fifo`])
    run("mknod", [`${rootfs}/dev/null`, "c", "1", "3"])
    run("chown", ["-h", "100:101", `${rootfs}/etc/kept`])
  })
  const time = { mtime: 1600000000 }
  image.addLayer(handMadeTar(dir, "layer-3.tar", [
    { name: "opaque/", type: "dir", ...time },
    { name: "opaque/before-marker", data: "this layer's, before the marker\n", ...time },
    { name: "opaque/.wh..wh..opq", ...time },
    { name: "opaque/after-marker", data: "this layer's, after the marker\n", ...time },
    { name: "hardlink-to-lower", type: "hardlink", linkname: "lower/target", ...time },
    { name: "chain-1", type: "symlink", linkname: "chain-2", ...time },
    { name: "chain-2", type: "symlink", linkname: "/lower/target", ...time },
    {
      name: "tagged",
      data: "pax records\n",
      uid: 3_000_000,
      gid: 3_000_001,
      pax: { "SCHILY.xattr.user.note": "from pax", mtime: "1600000000.5" },
    },
  ]))
  return image
}

const write = (path: string, text: string) => Deno.writeTextFileSync(path, text)
