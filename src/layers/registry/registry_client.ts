/**
 * The registry side of the OCI distribution protocol: requests to one repository, authenticated
 * the way registries challenge for it (anonymous, Basic, or a Bearer token from the challenge's
 * token endpoint), over HTTPS, or plain HTTP where `usesPlainHttp` allows it. Redirects are
 * followed by hand so that credentials never go to another host; requests that fail in transit,
 * or get no answer within the network timeout, are retried a bounded number of times where they
 * can be repeated. Bodies read whole (tokens, error answers) are capped as they arrive.
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import {
  apiHost,
  formatOciReference,
  type OciReference,
  usesPlainHttp,
} from "../../domain/oci_reference.ts"
import {
  type RegistryError,
  RegistryNotFound,
  RegistryRefused,
  RegistryStalled,
  RegistryUnauthorized,
  RegistryUnreachable,
} from "../../domain/errors/registry.ts"
import type { NothingArrived } from "../../domain/errors/network.ts"
import {
  basicAuthorization,
  challengeParameters,
  challengeScheme,
  describeLimit,
  MAX_ERROR_BODY_BYTES,
  MAX_TOKEN_BYTES,
  missingThing,
  registryErrorEntries,
  tokenScope,
} from "../../domain/registry_protocol.ts"
import { withBulkFetch } from "../bulk_fetch.ts"
import {
  answerWithin,
  bodyStart,
  boundedBody,
  emptyAsNothing,
  networkTimeoutSetting,
} from "../network_reads.ts"
import {
  type Credential,
  type CredentialEnvironment,
  describeLookup,
  findCredential,
} from "./credentials.ts"

/**
 * How to reach registries: the `--plain-http` flag, `TRANSIENT_INSECURE_REGISTRIES`, the
 * environment the credential lookup reads, and how long a read may bring nothing
 * (`TRANSIENT_NETWORK_TIMEOUT`).
 */
export interface RegistryOptions {
  readonly plainHttp: boolean
  readonly insecure: ReadonlyArray<string>
  readonly credentials: CredentialEnvironment
  readonly timeout: Duration.Duration
}

const optionalString = (name: string) =>
  Config.string(name).pipe(Config.option, Config.map(Option.getOrUndefined))

/** The options from the environment, with `plainHttp` from the command line. */
export const registryConfig = (plainHttp: boolean): Config.Config<RegistryOptions> =>
  Config.all({
    insecure: Config.string("TRANSIENT_INSECURE_REGISTRIES").pipe(
      Config.withDefault(""),
      Config.map((text) => text.split(",").filter((entry) => entry.trim() !== "")),
    ),
    credentials: Config.all({
      REGISTRY_AUTH_FILE: optionalString("REGISTRY_AUTH_FILE"),
      XDG_RUNTIME_DIR: optionalString("XDG_RUNTIME_DIR"),
      DOCKER_CONFIG: optionalString("DOCKER_CONFIG"),
      HOME: optionalString("HOME"),
    }),
    timeout: networkTimeoutSetting,
  }).pipe(Config.map((options) => ({ plainHttp, ...options })))

export interface RegistryRequest {
  readonly method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH"
  /** A path under `/v2/REPOSITORY/`, or an absolute URL (an upload's Location). */
  readonly path: string
  readonly headers?: Record<string, string>
  /** Made anew for each attempt, so that a challenged or retried request can be sent again. */
  readonly body?: () => HttpBody.HttpBody
  /** What the request does, for errors: `fetch the manifest`, `upload blob sha256:…`. */
  readonly operation: string
  /** Whether the request may be sent again after a transport failure (default: GET and HEAD). */
  readonly repeatable?: boolean
  /** The answer's body is a blob, read as a stream (bulk_fetch.ts): never `json` or `text`. */
  readonly streamed?: boolean
}

export type RegistryRequirements =
  | HttpClient.HttpClient
  | FileSystem.FileSystem
  | CommandExecutor.CommandExecutor

export interface RegistrySession {
  readonly reference: OciReference
  /** How long an answer, or a read of a body, may bring nothing (`TRANSIENT_NETWORK_TIMEOUT`). */
  readonly timeout: Duration.Duration
  /** The reference as the user wrote it, for messages. */
  readonly describe: string
  /** The URL of `path` under the repository (`manifests/latest`), or `path` when absolute. */
  readonly url: (path: string) => string
  /** Send `request`; any status comes back (see `expect`), failures in transit are errors. */
  readonly send: (
    request: RegistryRequest,
  ) => Effect.Effect<HttpClientResponse.HttpClientResponse, RegistryError, Scope.Scope>
  /**
   * The error for an unexpected answer to `operation`: NotFound (of `blob`, when a blob was
   * asked for), Unauthorized or Refused.
   */
  readonly failure: (
    response: HttpClientResponse.HttpClientResponse,
    operation: string,
    blob?: string,
  ) => Effect.Effect<never, RegistryError>
}

/** Attempts of a repeatable request that fails in transit. */
const ATTEMPTS = 4
const MAX_REDIRECTS = 5

/** What failed in transit, without the URL fetch repeats (`…: Connection refused`). */
const transportReason = (cause: unknown): string => {
  const error = cause instanceof Error && cause.cause instanceof Error ? cause.cause : cause
  const text = error instanceof Error ? error.message : String(error)
  return text.replace(/^error sending request for url \([^)]*\): /, "").replace(
    /^client error \(Connect\): /,
    "",
  )
}

const unreachable = (registry: string, target: string, cause: unknown) =>
  new RegistryUnreachable({ registry, url: target, reason: transportReason(cause) })

/** Where a session's requests go, and the authorization it has earned so far. */
interface Connection {
  readonly client: HttpClient.HttpClient.With<HttpClientError.HttpClientError, Scope.Scope>
  readonly registry: string
  /** The registry's API host: the only one the authorization goes to. */
  readonly host: string
  readonly authorization: Ref.Ref<string | undefined>
  /** How long an answer, or a read of its body, may take to bring anything. */
  readonly timeout: Duration.Duration
}

/** RegistryStalled for `operation` at `target`, with its silence as the cause. */
const stalledAt =
  (registry: string, operation: string, target: string) => (cause: NothingArrived) =>
    new RegistryStalled({ registry, operation, url: target, cause })

/**
 * `outgoing`, with `sent` run once its body has gone (at once when it has none, as its streamed
 * bytes end when it has one).
 */
const signalSent = (
  outgoing: HttpClientRequest.HttpClientRequest,
  sent: Effect.Effect<void>,
): HttpClientRequest.HttpClientRequest => {
  const body = outgoing.body
  if (body._tag !== "Stream") return outgoing
  return HttpClientRequest.setBody(
    outgoing,
    HttpBody.stream(
      Stream.ensuring(body.stream, sent),
      body.contentType,
      ...(body.contentLength === undefined ? [] : [body.contentLength]),
    ),
  )
}

/** One exchange, following redirects; the credential goes to the registry's host only. */
const exchange = (
  connection: Connection,
  request: RegistryRequest,
  target: string,
  redirects = 0,
): Effect.Effect<
  HttpClientResponse.HttpClientResponse,
  RegistryUnreachable | RegistryStalled,
  Scope.Scope
> =>
  Effect.gen(function* () {
    const auth = yield* Ref.get(connection.authorization)
    const sameHost = new URL(target).host === connection.host
    let outgoing = HttpClientRequest.make(request.method)(target).pipe(
      HttpClientRequest.setHeaders(request.headers ?? {}),
    )
    if (auth !== undefined && sameHost) {
      outgoing = HttpClientRequest.setHeader(outgoing, "authorization", auth)
    }
    if (request.body !== undefined) {
      outgoing = HttpClientRequest.setBody(outgoing, request.body())
    }
    const streamsBody = outgoing.body._tag === "Stream"
    const response = yield* answerWithin(
      (sent) =>
        Effect.zipRight(
          streamsBody ? Effect.void : sent,
          connection.client.execute(signalSent(outgoing, sent)),
        ).pipe(
          Effect.provideService(FetchHttpClient.RequestInit, { redirect: "manual" }),
          request.streamed === true ? withBulkFetch(connection.timeout) : identity,
          Effect.mapError((error) =>
            unreachable(connection.registry, target, error.cause ?? error)
          ),
        ),
      connection.timeout,
      stalledAt(connection.registry, request.operation, target),
    )
    const location = response.headers["location"]
    const redirected = [301, 302, 303, 307, 308].includes(response.status) &&
      location !== undefined && (request.method === "GET" || request.method === "HEAD")
    if (!redirected || redirects >= MAX_REDIRECTS) return response
    return yield* exchange(connection, request, new URL(location, target).href, redirects + 1)
  })

/** The JSON object in `text`, else an empty one. */
const parsedObject = (text: string): Record<string, unknown> => {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === "object" && value !== null ? value as Record<string, unknown> : {}
  } catch {
    return {}
  }
}

/**
 * Answer a 401's `challenge` for `action` on `reference`'s repository, with the credential `own`
 * (if any): the connection's authorization becomes a token, or Basic credentials. False when
 * there is no answer.
 */
const answerChallenge = (
  connection: Connection,
  reference: OciReference,
  action: "pull" | "push",
  challenge: string,
  own: Credential | undefined,
) =>
  Effect.gen(function* () {
    const registry = reference.registry
    const scheme = challengeScheme(challenge)
    if (scheme === "basic") {
      if (own === undefined) return false
      yield* Ref.set(connection.authorization, basicAuthorization(own.username, own.password))
      return true
    }
    if (scheme !== "bearer") return false
    const parameters = challengeParameters(challenge)
    const realm = parameters.realm
    if (realm === undefined) return false
    const tokenUrl = new URL(realm)
    if (parameters.service) tokenUrl.searchParams.set("service", parameters.service)
    tokenUrl.searchParams.set("scope", tokenScope(reference.repository, action))
    let tokenRequest = HttpClientRequest.get(tokenUrl.href)
    if (own !== undefined) {
      tokenRequest = HttpClientRequest.setHeader(
        tokenRequest,
        "authorization",
        basicAuthorization(own.username, own.password),
      )
    }
    const operation = `issue a token at ${tokenUrl.origin}${tokenUrl.pathname}`
    const stalled = stalledAt(registry, operation, tokenUrl.href)
    const response = yield* answerWithin(
      (sent) =>
        Effect.zipRight(sent, connection.client.execute(tokenRequest)).pipe(
          Effect.provideService(FetchHttpClient.RequestInit, { redirect: "follow" }),
          Effect.mapError((error) => unreachable(registry, tokenUrl.href, error.cause ?? error)),
        ),
      connection.timeout,
      stalled,
    )
    if (response.status === 401 || response.status === 403) return false
    if (response.status < 200 || response.status >= 300) {
      return yield* new RegistryRefused({
        registry,
        operation,
        status: response.status,
        detail: "the token endpoint refused",
      })
    }
    const text = yield* boundedBody(emptyAsNothing(response.stream), {
      limit: MAX_TOKEN_BYTES,
      timeout: connection.timeout,
      tooLarge: () =>
        new RegistryRefused({
          registry,
          operation,
          detail: `its answer ran past the ${describeLimit(MAX_TOKEN_BYTES)} limit`,
        }),
      stalled,
    }).pipe(
      Effect.map((bytes) => new TextDecoder().decode(bytes)),
      Effect.catchTag("ResponseError", () => Effect.succeed("")),
    )
    const body = parsedObject(text)
    const token = body.token ?? body.access_token
    if (typeof token !== "string" || token === "") {
      return yield* new RegistryRefused({
        registry,
        operation: "issue a token",
        detail: "its token endpoint answered without a token",
      })
    }
    yield* Ref.set(connection.authorization, `Bearer ${token}`)
    return true
  })

/**
 * The error for an unexpected `response` to `operation` on `reference` (`describe`d): NotFound
 * (of `blob`, when a blob was asked for), `unauthorized`, or Refused.
 */
const unexpectedAnswer = (
  reference: OciReference,
  describe: string,
  unauthorized: Effect.Effect<never, RegistryUnauthorized>,
  timeout: Duration.Duration,
  response: HttpClientResponse.HttpClientResponse,
  operation: string,
  blob?: string,
) =>
  Effect.gen(function* () {
    // Only the start of an error answer is read: its message is there, and the rest may be huge.
    const text = response.request.method === "HEAD"
      ? ""
      : new TextDecoder().decode(yield* bodyStart(response.stream, MAX_ERROR_BODY_BYTES, timeout))
    const errors = registryErrorEntries(text)
    const codes = new Set(errors.map((error) => error.code))
    if (response.status === 401 || response.status === 403 || codes.has("DENIED")) {
      return yield* unauthorized
    }
    if (response.status === 404) {
      return yield* new RegistryNotFound({
        reference: describe,
        ...(blob === undefined
          ? missingThing(codes, reference, operation)
          : { what: "blob" as const, name: blob }),
      })
    }
    const detail = errors.map((error) => error.message || error.code).filter(Boolean)
      .join("; ") || (text.trim().split("\n")[0] ?? "").slice(0, 200) || "no explanation"
    return yield* new RegistryRefused({
      registry: reference.registry,
      operation,
      status: response.status,
      detail,
    })
  })

/** A session with the repository of `reference`, authorized for `action`. */
export const openRegistry = (
  reference: OciReference,
  action: "pull" | "push",
  options: RegistryOptions,
): Effect.Effect<RegistrySession, never, RegistryRequirements> =>
  Effect.gen(function* () {
    const context = yield* Effect.context<RegistryRequirements>()
    const client = (yield* HttpClient.HttpClient).pipe(
      HttpClient.withTracerPropagation(false),
      HttpClient.withScope,
    )
    const scheme = usesPlainHttp(reference.registry, options.insecure, options.plainHttp)
      ? "http"
      : "https"
    const host = apiHost(reference.registry)
    const base = `${scheme}://${host}/v2/${reference.repository}/`
    const describe = formatOciReference(reference)
    const registry = reference.registry
    const authorization = yield* Ref.make<string | undefined>(undefined)
    const connection: Connection = {
      client,
      registry,
      host,
      authorization,
      timeout: options.timeout,
    }
    // Looked up once, and only when a registry asks for it: it may run credential helpers.
    const credential = yield* Effect.cached(
      findCredential(registry, options.credentials).pipe(Effect.provide(context)),
    )
    const unauthorized = Effect.flatMap(credential, (found) =>
      Effect.fail(
        new RegistryUnauthorized({
          registry,
          repository: reference.repository,
          action,
          tried: describeLookup(found),
        }),
      ))

    const url = (path: string) => /^https?:\/\//.test(path) ? path : new URL(path, base).href

    const attempt = (request: RegistryRequest) =>
      Effect.gen(function* () {
        const target = url(request.path)
        const first = yield* exchange(connection, request, target)
        if (first.status !== 401) return first
        const challenge = first.headers["www-authenticate"] ?? ""
        const before = yield* Ref.get(authorization)
        const { credential: own } = yield* credential
        if (!(yield* answerChallenge(connection, reference, action, challenge, own))) {
          return yield* unauthorized
        }
        const after = yield* Ref.get(authorization)
        // The same credential again would get the same answer.
        if (after === before) return yield* unauthorized
        const second = yield* exchange(connection, request, target)
        if (second.status === 401) return yield* unauthorized
        return second
      })

    const send = (request: RegistryRequest) => {
      const repeatable = request.repeatable ??
        (request.method === "GET" || request.method === "HEAD")
      return attempt(request).pipe(
        Effect.retry({
          schedule: Schedule.exponential(Duration.millis(250)),
          times: repeatable ? ATTEMPTS - 1 : 0,
          while: (error) =>
            error._tag === "RegistryUnreachable" || error._tag === "RegistryStalled",
        }),
      )
    }

    const failure = (
      response: HttpClientResponse.HttpClientResponse,
      operation: string,
      blob?: string,
    ) =>
      unexpectedAnswer(
        reference,
        describe,
        unauthorized,
        options.timeout,
        response,
        operation,
        blob,
      )

    return {
      reference,
      describe,
      url,
      send,
      failure,
      timeout: options.timeout,
    } satisfies RegistrySession
  })
