/**
 * Registry credentials, found where the container tools keep them: `REGISTRY_AUTH_FILE`, then
 * `$XDG_RUNTIME_DIR/containers/auth.json` (Podman, Skopeo, Buildah), then
 * `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` (Docker) — each file's `credHelpers`
 * entry for the registry, its `auths` entry, then its `credsStore`, the helpers being the
 * `docker-credential-NAME` programs Docker runs.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { runTool } from "../host_process.ts"

export interface Credential {
  readonly username: string
  readonly password: string
  /** Where it came from, for messages: `auth.json /run/user/0/containers/auth.json`. */
  readonly source: string
}

export interface CredentialLookup {
  readonly credential: Credential | undefined
  /** Every place looked in, in order, for an unauthorized error to name. */
  readonly searched: ReadonlyArray<string>
}

/** The environment the lookup reads (registryConfig reads it through Config). */
export interface CredentialEnvironment {
  readonly REGISTRY_AUTH_FILE?: string | undefined
  readonly XDG_RUNTIME_DIR?: string | undefined
  readonly DOCKER_CONFIG?: string | undefined
  readonly HOME?: string | undefined
}

/** The auth files to read, in order. */
export const authFiles = (env: CredentialEnvironment): ReadonlyArray<string> => {
  const files: Array<string> = []
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE)
  if (env.XDG_RUNTIME_DIR) files.push(`${env.XDG_RUNTIME_DIR}/containers/auth.json`)
  if (env.DOCKER_CONFIG) files.push(`${env.DOCKER_CONFIG}/config.json`)
  else if (env.HOME) files.push(`${env.HOME}/.docker/config.json`)
  return files
}

const DOCKER_HUB_KEYS = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"])

/** The registry an `auths` key names: `https://host/v1/` and `host/repo` both name `host`. */
const keyHost = (key: string): string => {
  const host = key.replace(/^[a-z]+:\/\//i, "").split("/")[0] ?? ""
  return DOCKER_HUB_KEYS.has(host) ? "docker.io" : host.toLowerCase()
}

/** The server name a credential helper is asked about (Docker Hub's is historical). */
const helperServer = (registry: string): string =>
  registry === "docker.io" ? "https://index.docker.io/v1/" : registry

/**
 * What an auth file holds, as far as the lookup reads it: fields of other shapes are ignored one
 * by one (as Docker and Podman ignore them), not the whole file.
 */
const AuthFile = Schema.parseJson(Schema.Struct({
  auths: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  credHelpers: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  credsStore: Schema.optional(Schema.Unknown),
}))

/** One `auths` entry: `auth` (base64 of `user:password`), or the two in the clear. */
const AuthEntry = Schema.Struct({
  auth: Schema.optional(Schema.String),
  username: Schema.optional(Schema.String),
  password: Schema.optional(Schema.String),
})
type AuthEntry = typeof AuthEntry.Type

/** A credential helper's answer to `get`. */
const HelperAnswer = Schema.parseJson(Schema.Struct({
  Username: Schema.optional(Schema.String),
  Secret: Schema.optional(Schema.String),
}))

const decodeAuthFile = Schema.decodeUnknownOption(AuthFile)
const decodeAuthEntry = Schema.decodeUnknownOption(AuthEntry)
const decodeHelperAnswer = Schema.decodeUnknownOption(HelperAnswer)

const fromEntry = (entry: AuthEntry, source: string): Credential | undefined => {
  if (entry.username !== undefined && entry.password !== undefined) {
    return { username: entry.username, password: entry.password, source }
  }
  if (entry.auth === undefined || entry.auth === "") return undefined
  let decoded: string
  try {
    decoded = atob(entry.auth)
  } catch {
    return undefined
  }
  const colon = decoded.indexOf(":")
  if (colon <= 0) return undefined
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), source }
}

/** Ask `docker-credential-NAME get` for the registry's credential. */
const fromHelper = (helper: string, registry: string, searched: Array<string>) =>
  Effect.gen(function* () {
    const program = `docker-credential-${helper}`
    searched.push(program)
    const result = yield* runTool([program, "get"], {
      stdin: Stream.make(new TextEncoder().encode(helperServer(registry))),
    }).pipe(Effect.option)
    if (result._tag === "None" || result.value.code !== 0) return undefined
    const answer = decodeHelperAnswer(result.value.stdout)
    if (Option.isNone(answer)) return undefined
    const { Username: username, Secret: password } = answer.value
    return username !== undefined && password !== undefined && username !== "<token>"
      ? { username, password, source: program }
      : undefined
  })

/** The credential for `registry`, from the first place that has one. */
export const findCredential = Effect.fn("Registry.findCredential")(function* (
  registry: string,
  env: CredentialEnvironment,
) {
  const fs = yield* FileSystem.FileSystem
  const host = keyHost(registry)
  const searched: Array<string> = []
  for (const file of authFiles(env)) {
    const text = yield* fs.readFileString(file).pipe(Effect.option)
    if (text._tag === "None") continue
    searched.push(file)
    const decoded = decodeAuthFile(text.value)
    if (Option.isNone(decoded)) continue
    const config = decoded.value
    const helpers = config.credHelpers ?? {}
    const helper = Object.entries(helpers).find(([key]) => keyHost(key) === host)?.[1]
    if (typeof helper === "string") {
      const credential = yield* fromHelper(helper, registry, searched)
      if (credential) return { credential, searched }
    }
    for (const [key, value] of Object.entries(config.auths ?? {})) {
      const entry = decodeAuthEntry(value)
      if (keyHost(key) !== host || Option.isNone(entry)) continue
      const credential = fromEntry(entry.value, file)
      if (credential) return { credential, searched }
    }
    if (typeof config.credsStore === "string") {
      const credential = yield* fromHelper(config.credsStore, registry, searched)
      if (credential) return { credential, searched }
    }
  }
  return { credential: undefined, searched } as CredentialLookup
})

/** How an unauthorized error says what was tried. */
export const describeLookup = (lookup: CredentialLookup): string =>
  lookup.credential !== undefined
    ? `credentials of user '${lookup.credential.username}' from ${lookup.credential.source}`
    : lookup.searched.length === 0
    ? "no credentials: no REGISTRY_AUTH_FILE, containers auth.json or ~/.docker/config.json " +
      "exists"
    : `no credentials for this registry in ${lookup.searched.join(", ")}`
