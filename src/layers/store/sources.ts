/**
 * Opening an image's source as a byte stream: a local file, an HTTP(S) URL, or a Vagrant box
 * found through the Vagrant Cloud API (its `libvirt` provider, else `qemu`).
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import type { VagrantBox } from "../../domain/image_spec.ts"
import { SourceError } from "./decompress.ts"

export interface OpenedSource {
  readonly stream: ReadableStream<Uint8Array>
  /** The byte count announced by the server or the file system, when known. */
  readonly size: number | undefined
  /** A checksum the source itself publishes (Vagrant metadata), to verify the bytes against. */
  readonly checksum?: { readonly type: string; readonly value: string }
  /** A Vagrant box archive, whose `box.img` is the image. */
  readonly boxArchive: boolean
}

const reasonOf = (error: unknown): string => {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : ""
    return `${error.message}${cause}`
  }
  return String(error)
}

export const openFile = async (path: string): Promise<OpenedSource> => {
  try {
    const file = await Deno.open(path, { read: true })
    const info = await file.stat()
    if (!info.isFile) {
      file.close()
      throw new SourceError(`Cannot read ${path}: not a regular file`)
    }
    return { stream: file.readable, size: info.size, boxArchive: false }
  } catch (error) {
    if (error instanceof SourceError) throw error
    throw new SourceError(`Cannot read ${path}: ${reasonOf(error)}`)
  }
}

const get = async (url: string, signal: AbortSignal): Promise<Response> => {
  let response: Response
  try {
    response = await fetch(url, { signal, redirect: "follow" })
  } catch (error) {
    if (signal.aborted) throw error
    throw new SourceError(`Cannot download ${url}: ${reasonOf(error)}`)
  }
  if (!response.ok) {
    await response.body?.cancel()
    throw new SourceError(
      `Cannot download ${url}: HTTP ${response.status} ${response.statusText}`.trimEnd(),
    )
  }
  return response
}

/** The body's length, when the server announced it for the bytes we will read. */
const announcedSize = (response: Response): number | undefined => {
  const length = response.headers.get("content-length")
  if (length === null || response.headers.get("content-encoding")) return undefined
  const size = Number(length)
  return Number.isSafeInteger(size) && size >= 0 ? size : undefined
}

export const openUrl = async (url: string, signal: AbortSignal): Promise<OpenedSource> => {
  const response = await get(url, signal)
  if (response.body === null) throw new SourceError(`Cannot download ${url}: empty response`)
  return { stream: response.body, size: announcedSize(response), boxArchive: false }
}

const VagrantProvider = Schema.Struct({
  name: Schema.String,
  download_url: Schema.String,
  checksum_type: Schema.optional(Schema.NullOr(Schema.String)),
  checksum: Schema.optional(Schema.NullOr(Schema.String)),
  architecture: Schema.optional(Schema.NullOr(Schema.String)),
  default_architecture: Schema.optional(Schema.NullOr(Schema.Boolean)),
})
type VagrantProvider = typeof VagrantProvider.Type

const VagrantBoxInfo = Schema.Struct({
  tag: Schema.String,
  versions: Schema.Array(Schema.Struct({
    version: Schema.String,
    providers: Schema.Array(VagrantProvider),
  })),
})
type VagrantBoxInfo = typeof VagrantBoxInfo.Type

const decodeBoxInfo = Schema.decodeUnknownEither(VagrantBoxInfo)

const HOST_ARCHITECTURES = new Set(["amd64", "x86_64"])

/** The provider to download: libvirt (else qemu), for this host's architecture when listed. */
export const chooseProvider = (
  info: VagrantBoxInfo,
  version: string,
): VagrantProvider | undefined => {
  const providers = info.versions.find((candidate) => candidate.version === version)?.providers ??
    []
  for (const name of ["libvirt", "qemu"]) {
    const named = providers.filter((provider) => provider.name === name)
    const choice = named.find((p) => p.architecture && HOST_ARCHITECTURES.has(p.architecture)) ??
      named.find((p) => !p.architecture || p.default_architecture === true) ?? named[0]
    if (choice) return choice
  }
  return undefined
}

export const openVagrantBox = async (
  apiBase: string,
  { box, version }: VagrantBox,
  signal: AbortSignal,
): Promise<OpenedSource & { readonly url: string }> => {
  const metadataUrl = `${apiBase.replace(/\/+$/, "")}/api/v1/box/${box}`
  let response: Response
  try {
    response = await get(metadataUrl, signal)
  } catch (error) {
    if (!(error instanceof SourceError)) throw error
    throw new SourceError(
      `Unable to download Vagrant box '${box}' info (${
        error.message.replace(/^Cannot download \S+: /, "")
      }). Maybe invalid image?`,
    )
  }
  let document: unknown
  try {
    document = await response.json()
  } catch (error) {
    throw new SourceError(`Vagrant box '${box}' info is not JSON: ${reasonOf(error)}`)
  }
  const info = decodeBoxInfo(document)
  if (Either.isLeft(info)) {
    throw new SourceError(`Vagrant box '${box}' info is not in the expected form`)
  }
  const provider = chooseProvider(info.right, version)
  if (provider === undefined) {
    throw new SourceError(
      `No version '${version}' available for ${info.right.tag} with provider libvirt`,
    )
  }
  const opened = await openUrl(provider.download_url, signal)
  const checksum = provider.checksum && provider.checksum_type
    ? { type: provider.checksum_type.toLowerCase(), value: provider.checksum.toLowerCase() }
    : undefined
  return {
    ...opened,
    boxArchive: true,
    url: provider.download_url,
    ...(checksum ? { checksum } : {}),
  }
}
