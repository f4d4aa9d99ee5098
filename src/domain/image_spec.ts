/**
 * Image specs (`NAME`, `NAME,file=PATH`, `NAME,http=URL`, `NAME,vagrant=owner/box:version`, each
 * with an optional `,sha256=HEX`, and `NAME,oci=REGISTRY/REPOSITORY:TAG` or `…@sha256:HEX`) and the store's file-name encoding, both compatible with the
 * original transient so that its specs and stores keep working.
 */
import * as Either from "effect/Either"
import { InvalidImageSpec } from "./errors/store.ts"
import { type OciReference, parseOciReference } from "./oci_reference.ts"
import { visibleName } from "./visible_name.ts"

/** A Vagrant box: `owner/box` at a version (given with or without a leading `v`). */
export interface VagrantBox {
  readonly box: string
  readonly version: string
}

/** Where an image comes from when the store does not hold it yet. */
export type ImageSource =
  /** A bare NAME: the store's image, else the Vagrant box the name spells (if it spells one). */
  | { readonly _tag: "Named" }
  | { readonly _tag: "File"; readonly path: string }
  | { readonly _tag: "Http"; readonly url: string }
  | { readonly _tag: "Vagrant"; readonly box: VagrantBox }
  /** A containerDisk or disk artifact in an OCI registry. */
  | { readonly _tag: "Oci"; readonly reference: OciReference }

export interface ImageSpec {
  readonly name: string
  readonly source: ImageSource
  /** Lower-case hex sha256 of the bytes fetched (before decompression), when given. */
  readonly sha256?: string
}

// The original's grammar: a name without commas, then optionally `,protocol=source`.
const SPEC = /^([^,]+?)(?:,(.+?)=(.+))?$/s
const CHECKSUM = /,sha256=([^,]*)$/i
const SHA256_HEX = /^[0-9a-f]{64}$/i

const invalid = (spec: string, reason: string) => new InvalidImageSpec({ spec, reason })

/** `owner/box:version` (a leading `v` on the version is dropped, as the API has none). */
export const parseVagrantBox = (text: string): VagrantBox | undefined => {
  const match = /^([^/:\s]+\/[^/:\s]+):(.+)$/.exec(text)
  if (!match) return undefined
  const [, box = "", rawVersion = ""] = match
  const version = rawVersion.startsWith("v") ? rawVersion.slice(1) : rawVersion
  return version === "" ? undefined : { box, version }
}

const parseSource = (
  spec: string,
  protocol: string,
  location: string,
): Either.Either<ImageSource, InvalidImageSpec> => {
  switch (protocol.toLowerCase()) {
    case "file":
      return Either.right({ _tag: "File", path: location })
    case "http":
    case "https": {
      const url = URL.parse(location)
      if (url === null || (url.protocol !== "http:" && url.protocol !== "https:")) {
        return Either.left(invalid(spec, `Invalid URL '${location}' in image spec '${spec}'`))
      }
      return Either.right({ _tag: "Http", url: url.href })
    }
    case "vagrant": {
      const box = parseVagrantBox(location)
      return box === undefined
        ? Either.left(
          invalid(
            spec,
            `Invalid Vagrant box '${location}' in image spec '${spec}' (expected owner/box:version)`,
          ),
        )
        : Either.right({ _tag: "Vagrant", box })
    }
    case "oci":
      return Either.match(parseOciReference(location), {
        onLeft: (reason) =>
          Either.left(
            invalid(
              spec,
              `Invalid registry reference '${location}' in image spec '${spec}': ${reason}`,
            ),
          ),
        onRight: (reference) => Either.right({ _tag: "Oci", reference }),
      })
    default:
      return Either.left(invalid(spec, `Unknown image source protocol '${protocol}'`))
  }
}

/**
 * The longest name the store can hold: its file name is the encoded name plus a suffix of about
 * 50 bytes while it is being written, and a file name has at most 255 bytes.
 */
const MAX_ENCODED_NAME_BYTES = 200

/** Why `name` cannot name an image (undefined when it can). */
export const imageNameProblem = (name: string): string | undefined => {
  if (name.trim() === "") return "it is empty"
  // Such names would be hidden files in the store, or the store's own directories.
  if (name.startsWith(".")) return "it may not start with '.'"
  // deno-lint-ignore no-control-regex -- control characters are what is refused.
  if (/[\x00-\x1f\x7f]/.test(name)) return "it may not contain control characters"
  const encoded = encodeImageName(name).length
  if (encoded > MAX_ENCODED_NAME_BYTES) {
    return `it is too long: ${encoded} bytes as a file name, at most ${MAX_ENCODED_NAME_BYTES}`
  }
  return undefined
}

/** Parse an image spec, with the original's error messages. */
export const parseImageSpec = (spec: string): Either.Either<ImageSpec, InvalidImageSpec> => {
  let rest = spec
  let sha256: string | undefined
  const checksum = CHECKSUM.exec(spec)
  if (checksum) {
    const hex = checksum[1] ?? ""
    if (!SHA256_HEX.test(hex)) {
      return Either.left(
        invalid(
          spec,
          `Invalid sha256 checksum '${hex}' in image spec '${spec}' (expected 64 hex digits)`,
        ),
      )
    }
    sha256 = hex.toLowerCase()
    rest = spec.slice(0, checksum.index)
  }
  const match = SPEC.exec(rest)
  if (!match) return Either.left(invalid(spec, `Invalid image spec '${spec}'`))
  const [, name = "", protocol, location] = match
  const problem = imageNameProblem(name)
  if (problem !== undefined) {
    return Either.left(invalid(spec, `Invalid image name '${visibleName(name)}' (${problem})`))
  }
  const withChecksum = (source: ImageSource): ImageSpec =>
    sha256 === undefined ? { name, source } : { name, source, sha256 }
  if (protocol === undefined || location === undefined) {
    return Either.right(withChecksum({ _tag: "Named" }))
  }
  if (sha256 !== undefined && protocol.toLowerCase() === "oci") {
    return Either.left(
      invalid(spec, `Image spec '${spec}': pin a registry image with REF@sha256:HEX, not ,sha256=`),
    )
  }
  return Either.map(parseSource(spec, protocol, location), withChecksum)
}

// Python's urllib.parse.quote(name, safe="") leaves exactly these unescaped.
const UNRESERVED = /^[A-Za-z0-9_.~]$/

/**
 * The file name of an image in the store: URL-quoted (UTF-8, upper-case hex) with `-` quoted too,
 * as `urllib.parse.quote(name, safe="").replace("-", "%2D")` does in the original.
 */
export const encodeImageName = (name: string): string => {
  let out = ""
  for (const char of name) {
    if (UNRESERVED.test(char)) {
      out += char
      continue
    }
    for (const byte of new TextEncoder().encode(char)) {
      out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`
    }
  }
  return out
}

/** The image name a store file name stands for (lenient about stray `%`, like Python's unquote). */
export const decodeImageName = (fileName: string): string => {
  const bytes: Array<number> = []
  const encoder = new TextEncoder()
  for (let i = 0; i < fileName.length;) {
    const hex = fileName.slice(i + 1, i + 3)
    if (fileName[i] === "%" && /^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16))
      i += 3
    } else {
      const codePoint = fileName.codePointAt(i) ?? 0
      const char = String.fromCodePoint(codePoint)
      bytes.push(...encoder.encode(char))
      i += char.length
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes))
}
