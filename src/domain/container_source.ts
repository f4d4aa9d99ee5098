/**
 * Container images as ADD sources, written with skopeo's transport names: `docker://REFERENCE`
 * (a registry), `oci-archive:PATH` and `docker-archive:PATH` (a file in the build context),
 * `oci:DIR[:TAG]` (an OCI layout directory in the build context).
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import {
  apiHost,
  formatOciReference,
  type OciReference,
  parseOciReference,
} from "./oci_reference.ts"
import { confineSource } from "./source_path.ts"

export type ContainerSource = Data.TaggedEnum<{
  /** `docker://…`: pulled from a registry. */
  Registry: {
    readonly reference: OciReference
    /** The host the registry API answers on (`registry-1.docker.io` for `docker.io`). */
    readonly endpoint: string
  }
  /** `oci-archive:PATH`: a tar of an OCI layout, relative to the build directory. */
  OciArchive: { readonly path: string }
  /** `docker-archive:PATH`: what `docker save` or `podman save` writes. */
  DockerArchive: { readonly path: string }
  /** `oci:DIR[:TAG]`: an OCI layout directory; without a tag, its only image. */
  OciLayout: { readonly directory: string; readonly tag: string | undefined }
}>
export const ContainerSource = Data.taggedEnum<ContainerSource>()

/** The transports, as they begin a source. `docker:` alone, so `docker:NAME` gets its hint. */
const TRANSPORTS = ["docker:", "oci-archive:", "docker-archive:", "oci:"] as const

/**
 * Whether `text` names a container image rather than a file of the build context, so the
 * Imagefile's rules can tell them apart before it is parsed.
 */
export const isContainerSource = (text: string): boolean =>
  TRANSPORTS.some((transport) => text.startsWith(transport))

/** An image name inside an OCI layout (`org.opencontainers.image.ref.name`), as image-spec has it. */
const REF_NAME_COMPONENT = /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*$/
const isRefName = (name: string): boolean =>
  name.split("/").every((c) => REF_NAME_COMPONENT.test(c))

/** Parse `text`; the Left is one sentence saying what is wrong with it. */
export const parseContainerSource = (text: string): Either.Either<ContainerSource, string> => {
  if (text.startsWith("docker://")) return parseRegistry(text, text.slice("docker://".length))
  if (text.startsWith("docker:")) {
    return Either.left(`'${text}' needs two slashes after the transport: docker://NAME`)
  }
  if (text.startsWith("oci-archive:")) {
    return Either.map(
      archivePath(text, text.slice("oci-archive:".length)),
      (path) => ContainerSource.OciArchive({ path }),
    )
  }
  if (text.startsWith("docker-archive:")) {
    return Either.map(
      archivePath(text, text.slice("docker-archive:".length)),
      (path) => ContainerSource.DockerArchive({ path }),
    )
  }
  if (text.startsWith("oci:")) return parseLayout(text, text.slice("oci:".length))
  return Either.left(
    `'${text}' names no container transport (docker://, oci-archive:, docker-archive: or oci:)`,
  )
}

const parseRegistry = (text: string, rest: string): Either.Either<ContainerSource, string> => {
  if (rest === "") return Either.left(`'${text}' names no image after docker://`)
  // Taken whole: trimming would let a space through that the Imagefile could not have meant.
  if (rest.trim() !== rest) return Either.left(`'${text}' has spaces around its image name`)
  return Either.flatMap(
    Either.mapLeft(parseOciReference(rest), (why) => `'${text}' is not an image reference: ${why}`),
    (reference) =>
      reference.tag !== undefined && reference.digest !== undefined
        // skopeo refuses both as well: which one wins would be a guess.
        ? Either.left(`'${text}' gives both a tag and a digest; give one of them`)
        : Either.right(
          ContainerSource.Registry({ reference, endpoint: apiHost(reference.registry) }),
        ),
  )
}

/** The build-context path of an archive: relative, inside, and a file rather than `.`. */
const contextPath = (text: string, path: string): Either.Either<string, string> => {
  if (path === "") return Either.left(`'${text}' names no path after its transport`)
  const confined = confineSource(path)
  if ("refused" in confined) {
    return Either.left(`'${text}' is refused: ${confined.refused}`)
  }
  return Either.right(confined.path)
}

const archivePath = (text: string, path: string): Either.Either<string, string> => {
  // skopeo would read `PATH:NAME` as an image inside the archive; we take the archive's only image.
  if (path.includes(":")) {
    return Either.left(
      `'${text}' names an image inside the archive after ':', which is not supported; ` +
        "the archive must hold one image",
    )
  }
  return Either.flatMap(
    contextPath(text, path),
    (confined) =>
      confined === "."
        ? Either.left(`'${text}' names the build directory, not an archive file`)
        : Either.right(confined),
  )
}

const parseLayout = (text: string, rest: string): Either.Either<ContainerSource, string> => {
  // As skopeo does: the first ':' ends the directory.
  const colon = rest.indexOf(":")
  const directory = colon === -1 ? rest : rest.slice(0, colon)
  const tag = colon === -1 ? undefined : rest.slice(colon + 1)
  if (tag !== undefined && !isRefName(tag)) {
    return Either.left(`'${text}' has '${tag}' after ':', which is not an image name`)
  }
  return Either.map(
    contextPath(text, directory),
    (confined) => ContainerSource.OciLayout({ directory: confined, tag }),
  )
}

/** The source as the user would write it again, normalised. */
export const formatContainerSource = (source: ContainerSource): string =>
  ContainerSource.$match(source, {
    Registry: ({ reference }) => `docker://${formatOciReference(reference)}`,
    OciArchive: ({ path }) => `oci-archive:${path}`,
    DockerArchive: ({ path }) => `docker-archive:${path}`,
    OciLayout: ({ directory, tag }) => `oci:${directory}${tag === undefined ? "" : `:${tag}`}`,
  })
