/**
 * OCI references (`REGISTRY/REPOSITORY[:TAG][@sha256:HEX]`), as the container tools spell them,
 * and which registries are spoken to in plain HTTP.
 */
import * as Either from "effect/Either"

export interface OciReference {
  /** `host[:port]` as written; `docker.io` when the reference names no registry. */
  readonly registry: string
  readonly repository: string
  /** The tag; `latest` when neither a tag nor a digest is given. */
  readonly tag: string | undefined
  /** `sha256:HEX`, when the reference pins the manifest. */
  readonly digest: string | undefined
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
const DIGEST = /^sha256:[a-f0-9]{64}$/
const HOST = /^(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$/

/** Docker's rule: a first component with a dot, a colon, or `localhost` names a registry. */
const isRegistry = (component: string): boolean =>
  component.includes(".") || component.includes(":") || component.startsWith("[") ||
  component === "localhost"

/** Parse `text`; the Left is why it is not a reference. */
export const parseOciReference = (text: string): Either.Either<OciReference, string> => {
  let rest = text.trim()
  let digest: string | undefined
  const at = rest.indexOf("@")
  if (at !== -1) {
    digest = rest.slice(at + 1)
    rest = rest.slice(0, at)
    if (!DIGEST.test(digest)) return Either.left(`'${digest}' is not a sha256:HEX digest`)
  }
  const slash = rest.indexOf("/")
  const first = slash === -1 ? "" : rest.slice(0, slash)
  const named = slash !== -1 && isRegistry(first)
  // `index.docker.io` is Docker Hub's old name; the container tools read it as `docker.io`.
  const registry = named ? (first === "index.docker.io" ? "docker.io" : first) : "docker.io"
  let path = named ? rest.slice(slash + 1) : rest
  let tag: string | undefined
  const colon = path.lastIndexOf(":")
  if (colon !== -1) {
    tag = path.slice(colon + 1)
    path = path.slice(0, colon)
    if (!TAG.test(tag)) return Either.left(`'${tag}' is not a valid tag`)
  }
  if (!HOST.test(registry)) return Either.left(`'${registry}' is not a registry host`)
  if (path === "") return Either.left("it names no repository")
  const components = path.split("/")
  const bad = components.find((component) => !COMPONENT.test(component))
  if (bad !== undefined) {
    return Either.left(
      `'${bad}' is not a repository name component (lower-case letters, digits, '.', '_', '-')`,
    )
  }
  // Docker Hub's official images live under `library/`.
  const repository = registry === "docker.io" && components.length === 1 ? `library/${path}` : path
  return Either.right({
    registry,
    repository,
    tag: tag ?? (digest === undefined ? "latest" : undefined),
    digest,
  })
}

/** The reference as the user would write it again. */
export const formatOciReference = (reference: OciReference): string =>
  `${reference.registry}/${reference.repository}` +
  (reference.tag === undefined ? "" : `:${reference.tag}`) +
  (reference.digest === undefined ? "" : `@${reference.digest}`)

/** The same repository pinned at `digest`. */
export const pinned = (reference: OciReference, digest: string): string =>
  `${reference.registry}/${reference.repository}@${digest}`

/** The host the registry API answers on (Docker Hub's differs from its name). */
export const apiHost = (registry: string): string =>
  registry === "docker.io" ? "registry-1.docker.io" : registry

/** The host without its port (and without the brackets of an IPv6 address). */
export const hostName = (registry: string): string => {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(registry)
  if (bracketed) return bracketed[1] ?? ""
  return registry.replace(/:\d+$/, "")
}

/** A loopback host: Docker speaks plain HTTP to these without being told. */
export const isLoopback = (registry: string): boolean => {
  const host = hostName(registry).toLowerCase()
  return host === "localhost" || host === "::1" || /^127(?:\.\d{1,3}){3}$/.test(host)
}

/**
 * Whether to speak plain HTTP to `registry`: loopback registries, those listed in `insecure`
 * (`host:port` entries, as `TRANSIENT_INSECURE_REGISTRIES` gives them), or all with `plainHttp`.
 */
export const usesPlainHttp = (
  registry: string,
  insecure: ReadonlyArray<string>,
  plainHttp: boolean,
): boolean =>
  plainHttp || isLoopback(registry) ||
  insecure.some((entry) => entry.trim().toLowerCase() === registry.toLowerCase())
