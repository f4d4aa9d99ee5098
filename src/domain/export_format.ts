/**
 * The formats an image is exported to, and how each is written: which format a path asks for,
 * and the qemu-img argv that writes it (shared by `image export`, `build --local --format` and
 * `build --dry-run`). Each format's traps are handled here, once: Azure's fixed VHD of a whole
 * MiB, ESXi's streamOptimized VMDK with an adapter type, the OVA's disk inside its tar.
 */

export const EXPORT_FORMATS = ["qcow2", "raw", "vmdk", "vhdx", "vhd", "vhd-dynamic", "ova"] as const
export type ExportFormat = typeof EXPORT_FORMATS[number]

/** streamOptimized: ESXi and OVAs; monolithicSparse: VMware Workstation, which rejects the other. */
export const VMDK_SUBFORMATS = ["streamOptimized", "monolithicSparse"] as const
export type VmdkSubformat = typeof VMDK_SUBFORMATS[number]

/** The file extension each format is written with (`build --local` names files by it). */
export const FORMAT_EXTENSION: Readonly<Record<ExportFormat, string>> = {
  qcow2: "qcow2",
  raw: "raw",
  vmdk: "vmdk",
  vhdx: "vhdx",
  vhd: "vhd",
  "vhd-dynamic": "vhd",
  ova: "ova",
}

/** The formats an extension may hold; the first is what the extension alone means. */
const EXTENSION_FORMATS: Readonly<Record<string, ReadonlyArray<ExportFormat>>> = {
  qcow2: ["qcow2"],
  raw: ["raw"],
  img: ["raw"],
  vmdk: ["vmdk"],
  vhdx: ["vhdx"],
  vhd: ["vhd", "vhd-dynamic"],
  ova: ["ova"],
}

const extensionOf = (path: string): string | undefined => {
  const base = path.slice(path.lastIndexOf("/") + 1)
  const dot = base.lastIndexOf(".")
  return dot <= 0 ? undefined : base.slice(dot + 1).toLowerCase()
}

export const isExportFormat = (text: string): text is ExportFormat =>
  (EXPORT_FORMATS as ReadonlyArray<string>).includes(text)

const formatList = EXPORT_FORMATS.join(", ")

/**
 * The format to write `path` in: `requested` when given (its extension, if it has a known one,
 * must agree), else the one its extension names. A problem is a usage error's sentence.
 */
export const exportFormatFor = (
  path: string,
  requested?: ExportFormat,
): { readonly format: ExportFormat } | { readonly problem: string } => {
  const extension = extensionOf(path)
  const fits = extension === undefined ? undefined : EXTENSION_FORMATS[extension]
  if (requested !== undefined) {
    if (fits === undefined || fits.includes(requested)) return { format: requested }
    return {
      problem: `${path} has the extension .${extension}, which is not a ${requested} file: ` +
        `name it NAME.${FORMAT_EXTENSION[requested]} or drop --format`,
    }
  }
  const format = fits?.[0]
  if (format !== undefined) return { format }
  return {
    problem: `cannot tell the format of ${path} from its extension: give --format ` +
      `(one of ${formatList}) or one of the extensions .qcow2, .raw, .img, .vmdk, .vhdx, .vhd, .ova`,
  }
}

/** What qemu-img writes for a format: its `-O` name and its `-o` options. */
export interface ConvertTarget {
  readonly qemuFormat: string
  readonly options: ReadonlyArray<string>
}

/**
 * The file qemu-img writes for `format`; for an OVA, the disk that goes inside it (a
 * streamOptimized VMDK, the only kind an OVF package may hold).
 */
export const convertTarget = (
  format: ExportFormat,
  vmdkSubformat: VmdkSubformat = "streamOptimized",
): ConvertTarget => {
  switch (format) {
    case "qcow2":
      return { qemuFormat: "qcow2", options: [] }
    // Sparse: qemu-img leaves the zero areas unwritten.
    case "raw":
      return { qemuFormat: "raw", options: [] }
    case "vmdk":
      return {
        qemuFormat: "vmdk",
        options: [`subformat=${vmdkSubformat}`, "adapter_type=lsilogic"],
      }
    case "ova":
      return {
        qemuFormat: "vmdk",
        options: ["subformat=streamOptimized", "adapter_type=lsilogic"],
      }
    case "vhdx":
      return { qemuFormat: "vhdx", options: ["subformat=dynamic"] }
    // force_size: the size as given, not rounded to a CHS geometry (which Azure rejects).
    case "vhd":
      return { qemuFormat: "vpc", options: ["subformat=fixed", "force_size=on"] }
    case "vhd-dynamic":
      return { qemuFormat: "vpc", options: ["subformat=dynamic"] }
  }
}

/** `qemu-img ARGV` that writes `from` (a qcow2) as `to` in `target`; `-p` for a meter. */
export const convertArgv = (options: {
  readonly from: string
  readonly to: string
  readonly target: ConvertTarget
  readonly fromFormat?: string
  readonly progress?: boolean
}): ReadonlyArray<string> => [
  "convert",
  ...(options.progress === true ? ["-p"] : []),
  ...(options.fromFormat === undefined ? [] : ["-f", options.fromFormat]),
  "-O",
  options.target.qemuFormat,
  ...(options.target.options.length === 0 ? [] : ["-o", options.target.options.join(",")]),
  options.from,
  options.to,
]

export const MiB = 1024 * 1024

/** `bytes` rounded up to a whole MiB: Azure takes only fixed VHDs of such a size. */
export const roundUpToMiB = (bytes: number): number => Math.ceil(bytes / MiB) * MiB

/**
 * The size a disk of `virtualSize` bytes must grow to before it is written as `format`, when
 * it must (a fixed VHD whose size is not a whole MiB).
 */
export const exportGrowth = (format: ExportFormat, virtualSize: number): number | undefined => {
  if (format !== "vhd") return undefined
  const rounded = roundUpToMiB(virtualSize)
  return rounded === virtualSize ? undefined : rounded
}

/**
 * The qemu-img commands that write `from` (a qcow2 of `virtualSize` bytes) as `to` in
 * `format`, for `--dry-run`: a disk that must grow is first given a larger overlay, and an
 * OVA's disk is the VMDK its tar is then made of.
 */
export const exportCommands = (options: {
  readonly from: string
  readonly to: string
  readonly format: ExportFormat
  readonly virtualSize: number
  readonly vmdkSubformat?: VmdkSubformat
}): ReadonlyArray<ReadonlyArray<string>> => {
  const target = convertTarget(options.format, options.vmdkSubformat)
  const grown = exportGrowth(options.format, options.virtualSize)
  const disk = options.format === "ova" ? `${options.to}.vmdk` : options.to
  if (grown === undefined) {
    return [[
      "qemu-img",
      ...convertArgv({ from: options.from, to: disk, target, fromFormat: "qcow2" }),
    ]]
  }
  const overlay = `${options.to}.grown.qcow2`
  return [
    ["qemu-img", ...overlayArgv({ path: overlay, backing: options.from, sizeBytes: grown })],
    ["qemu-img", ...convertArgv({ from: overlay, to: disk, target, fromFormat: "qcow2" })],
  ]
}

/** `qemu-img ARGV` for a qcow2 at `path` over `backing`, of `sizeBytes` when given. */
export const overlayArgv = (options: {
  readonly path: string
  readonly backing: string
  readonly sizeBytes?: number
}): ReadonlyArray<string> => [
  "create",
  "-q",
  "-f",
  "qcow2",
  "-b",
  options.backing,
  "-F",
  "qcow2",
  options.path,
  ...(options.sizeBytes === undefined ? [] : [String(options.sizeBytes)]),
]
