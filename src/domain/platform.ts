/**
 * Platforms (`OS/ARCH[/VARIANT]`), normalised as containerd does, and the entry of an OCI image
 * index or a Docker manifest list that serves one.
 */
import * as Either from "effect/Either"

export interface Platform {
  readonly os: string
  readonly architecture: string
  /** `undefined` where the architecture has one variant only, or it is implied (arm64's v8). */
  readonly variant: string | undefined
}

/** What `build` picks when told nothing: the helper VM and the images it makes are x86-64. */
export const DEFAULT_PLATFORM: Platform = { os: "linux", architecture: "amd64", variant: undefined }

/** An index entry's `platform`, as OCI and Docker write it. */
export interface IndexPlatform {
  readonly os: string
  readonly architecture: string
  readonly variant?: string | undefined
}

const COMPONENT = /^[A-Za-z0-9_.-]+$/

/** The spellings containerd accepts for one architecture, and the variants that go with them. */
const normalizeArchitecture = (
  architecture: string,
  variant: string | undefined,
): { readonly architecture: string; readonly variant: string | undefined } => {
  const v = variant === undefined || variant === "" ? undefined : variant.toLowerCase()
  switch (architecture.toLowerCase()) {
    case "i386":
      return { architecture: "386", variant: undefined }
    case "x86_64":
    case "x86-64":
    case "amd64":
      // v1 is the baseline every amd64 has: saying it says nothing.
      return { architecture: "amd64", variant: v === "v1" ? undefined : v }
    case "aarch64":
    case "arm64":
      return {
        architecture: "arm64",
        variant: v === "8" || v === "v8" || v === "v8.0" ? undefined : v,
      }
    case "armhf":
      return { architecture: "arm", variant: "v7" }
    case "armel":
      return { architecture: "arm", variant: "v6" }
    case "arm":
      // A bare `arm` is v7, as Docker Hub's images and containerd take it.
      if (v === undefined || v === "7") return { architecture: "arm", variant: "v7" }
      return { architecture: "arm", variant: /^[5-8]$/.test(v) ? `v${v}` : v }
    default:
      return { architecture: architecture.toLowerCase(), variant: v }
  }
}

/** The canonical form of a platform, so that two spellings of one compare equal. */
export const normalizePlatform = (platform: IndexPlatform): Platform => {
  const os = platform.os.toLowerCase()
  return {
    os: os === "macos" ? "darwin" : os,
    ...normalizeArchitecture(platform.architecture, platform.variant),
  }
}

/** Parse `OS/ARCH[/VARIANT]`; the Left is one sentence saying what is wrong. */
export const parsePlatform = (text: string): Either.Either<Platform, string> => {
  const parts = text.split("/")
  if (parts.length < 2 || parts.length > 3 || parts.some((part) => !COMPONENT.test(part))) {
    return Either.left(
      `'${text}' is not a platform: expected OS/ARCH or OS/ARCH/VARIANT, such as linux/arm64`,
    )
  }
  const [os = "", architecture = "", variant] = parts
  return Either.right(normalizePlatform({ os, architecture, variant }))
}

export const formatPlatform = (platform: Platform): string =>
  `${platform.os}/${platform.architecture}` +
  (platform.variant === undefined ? "" : `/${platform.variant}`)

const samePlatform = (a: Platform, b: Platform): boolean =>
  a.os === b.os && a.architecture === b.architecture && a.variant === b.variant

/**
 * The first entry of `manifests` (an index's) that serves `platform`, or a sentence listing the
 * platforms the index has. Entries without a platform, and BuildKit's `unknown/unknown`
 * attestations, serve none.
 */
export const selectPlatformEntry = <
  Entry extends { readonly platform?: IndexPlatform | undefined },
>(
  manifests: ReadonlyArray<Entry>,
  platform: Platform,
): Either.Either<Entry, string> => {
  const wanted = normalizePlatform(platform)
  const served = manifests.flatMap((entry) =>
    entry.platform === undefined || entry.platform.os === "unknown"
      ? []
      : [{ entry, platform: normalizePlatform(entry.platform) }]
  )
  const match = served.find((candidate) => samePlatform(candidate.platform, wanted))
  if (match !== undefined) return Either.right(match.entry)
  const present = [...new Set(served.map((candidate) => formatPlatform(candidate.platform)))]
  return Either.left(
    present.length === 0
      ? `the image has no entry for ${formatPlatform(wanted)}, and names the platform of none`
      : `the image has no entry for ${formatPlatform(wanted)}; it has ${present.join(", ")}`,
  )
}
