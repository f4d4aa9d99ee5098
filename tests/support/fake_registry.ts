/**
 * A registry of the distribution protocol's core, in process, on 127.0.0.1: manifests, blobs,
 * uploads (POST, PATCH, PUT), Bearer auth through a token endpoint on another port, and blob
 * downloads redirected to a third port ("the CDN") that can drop a connection half-way. It
 * records what it was sent, so that tests can check what a client did, not only what it got.
 * It can be made hostile (`hostile`): silent, stalling, or sending bodies without end.
 */
import { createHash } from "node:crypto"
import { concatBytes as concat } from "../../src/domain/bytes.ts"

export interface FakeRegistryOptions {
  /** Require `Bearer` tokens, issued to this user and password at the token endpoint. */
  readonly bearer?: { readonly username: string; readonly password: string }
  /** Redirect blob downloads to the CDN. */
  readonly redirectBlobs?: boolean
  /** The CDN drops the first download of each blob after this many bytes. */
  readonly dropAfter?: number
}

/** What a hostile registry does; set on `FakeRegistry.hostile` at any time. */
export interface Hostility {
  /** Manifest requests are never answered. */
  silentManifests?: boolean
  /** Each blob download sends at most this many bytes, then nothing, without ending. */
  blobStallsAfter?: number
  /** Manifests are this many bytes of JSON whitespace, sent without a length. */
  unannouncedManifestBytes?: number
  /** The token endpoint answers 200 with a body that never ends. */
  endlessToken?: boolean
}

export interface SeenRequest {
  readonly server: "registry" | "token" | "cdn"
  readonly method: string
  readonly path: string
  readonly authorization: string | null
  readonly range: string | null
}

export interface FakeRegistry {
  readonly host: string
  readonly seen: Array<SeenRequest>
  readonly blobs: Map<string, Uint8Array>
  readonly manifests: Map<string, { readonly type: string; readonly bytes: Uint8Array }>
  readonly hostile: Hostility
  readonly close: () => Promise<void>
}

export const digestOf = (bytes: Uint8Array) =>
  `sha256:${createHash("sha256").update(bytes).digest("hex")}`

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  })

const error = (status: number, code: string) =>
  json(status, { errors: [{ code, message: code.toLowerCase().replace(/_/g, " ") }] })

const listen = (handler: (request: Request) => Response | Promise<Response>) => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler)
  return { server, port: (server.addr as Deno.NetAddr).port }
}

/** Half of `bytes`, then a broken connection. */
const dropped = (bytes: Uint8Array, after: number) =>
  new Response(
    new ReadableStream({
      start(controller) {
        controller.enqueue(bytes.slice(0, after))
        // Once the first part has gone out: the client has had bytes when the connection breaks.
        setTimeout(() => controller.error(new Error("dropped on purpose")), 300)
      },
    }),
    { headers: { "content-length": String(bytes.length) } },
  )

/** Resolved when the registry closes: what hangs on purpose lets go then, so it can shut down. */
const closing = () => {
  let release = () => {}
  const closed = new Promise<void>((resolve) => release = resolve)
  return { closed, release }
}

/** A body of `total` bytes of `fill` (endless when undefined), made as it is read, no length. */
const generated = (fill: number, total: number | undefined, closed: Promise<void>) => {
  const piece = new Uint8Array(64 * 1024).fill(fill)
  let sent = 0
  let done = false
  closed.then(() => done = true)
  return new Response(
    new ReadableStream<Uint8Array>({
      pull(controller) {
        if (done || (total !== undefined && sent >= total)) return controller.close()
        const size = total === undefined ? piece.length : Math.min(piece.length, total - sent)
        sent += size
        controller.enqueue(piece.slice(0, size))
      },
    }, { highWaterMark: 0 }),
    { headers: { "content-type": "application/json" } },
  )
}

/** `bytes`, of which only the first `after` are sent; the body then stays open until `closed`. */
const stalled = (bytes: Uint8Array, after: number, status: number, closed: Promise<void>) =>
  new Response(
    new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.slice(0, after))
        if (after >= bytes.length) return controller.close()
        closed.then(() => controller.error(new Error("closed")))
      },
    }),
    { status, headers: { "content-length": String(bytes.length) } },
  )

export const startFakeRegistry = (options: FakeRegistryOptions = {}): FakeRegistry => {
  const hostile: Hostility = {}
  const { closed, release } = closing()
  const seen: Array<SeenRequest> = []
  const blobs = new Map<string, Uint8Array>()
  const manifests = new Map<string, { type: string; bytes: Uint8Array }>()
  const uploads = new Map<string, Array<Uint8Array>>()
  const droppedOnce = new Set<string>()
  const record = (server: SeenRequest["server"], request: Request) => {
    const url = new URL(request.url)
    seen.push({
      server,
      method: request.method,
      path: url.pathname + url.search,
      authorization: request.headers.get("authorization"),
      range: request.headers.get("range"),
    })
  }

  /** The part of `bytes` a `Range: bytes=N-` asks for, when the request has one. */
  const ranged = (request: Request, bytes: Uint8Array) => {
    const range = /^bytes=(\d+)-$/.exec(request.headers.get("range") ?? "")
    if (!range) return undefined
    const start = Number(range[1])
    if (hostile.blobStallsAfter !== undefined) {
      return stalled(bytes.slice(start), hostile.blobStallsAfter, 206, closed)
    }
    return new Response(bytes.slice(start), {
      status: 206,
      headers: { "content-range": `bytes ${start}-${bytes.length - 1}/${bytes.length}` },
    })
  }

  const cdn = listen((request) => {
    record("cdn", request)
    const digest = new URL(request.url).pathname.slice(1)
    const bytes = blobs.get(digest)
    if (!bytes) return new Response("no", { status: 404 })
    const part = ranged(request, bytes)
    if (part) return part
    if (options.dropAfter !== undefined && !droppedOnce.has(digest)) {
      droppedOnce.add(digest)
      return dropped(bytes, options.dropAfter)
    }
    return new Response(bytes.slice())
  })

  const token = listen((request) => {
    record("token", request)
    const expected = options.bearer
    const given = request.headers.get("authorization")
    if (!expected || given !== `Basic ${btoa(`${expected.username}:${expected.password}`)}`) {
      return error(401, "UNAUTHORIZED")
    }
    if (hostile.endlessToken) return generated(32, undefined, closed)
    const scope = new URL(request.url).searchParams.get("scope") ?? ""
    return json(200, { token: `tok ${scope}` })
  })

  const registry = listen(async (request) => {
    record("registry", request)
    const url = new URL(request.url)
    if (options.bearer) {
      const auth = request.headers.get("authorization") ?? ""
      const push = request.method !== "GET" && request.method !== "HEAD"
      const scope = /^Bearer tok repository:[^:]+:(.+)$/.exec(auth)?.[1] ?? ""
      if (!scope.split(",").includes(push ? "push" : "pull")) {
        return new Response(JSON.stringify({ errors: [{ code: "UNAUTHORIZED" }] }), {
          status: 401,
          headers: {
            "www-authenticate": `Bearer realm="http://127.0.0.1:${token.port}/token",` +
              `service="fake",scope="repository:x:pull"`,
          },
        })
      }
    }
    const match = /^\/v2\/(.+?)\/(manifests|blobs\/uploads|blobs|tags)\/?(.*)$/.exec(url.pathname)
    if (!match) return url.pathname === "/v2/" ? json(200, {}) : error(404, "NOT_FOUND")
    const [, repository = "", kind, rest = ""] = match
    if (kind === "tags") {
      const tags = [...manifests.keys()].filter((key) => key.startsWith(`${repository}:`))
      return tags.length === 0 ? error(404, "NAME_UNKNOWN") : json(200, { name: repository, tags })
    }
    if (kind === "manifests") {
      const key = `${repository}:${rest}`
      if (request.method === "PUT") {
        const bytes = new Uint8Array(await request.arrayBuffer())
        const type = request.headers.get("content-type") ?? ""
        manifests.set(key, { type, bytes })
        manifests.set(`${repository}:${digestOf(bytes)}`, { type, bytes })
        return new Response(null, {
          status: 201,
          headers: { "docker-content-digest": digestOf(bytes) },
        })
      }
      if (hostile.silentManifests) {
        await closed
        return error(503, "UNAVAILABLE")
      }
      if (hostile.unannouncedManifestBytes !== undefined) {
        return generated(32, hostile.unannouncedManifestBytes, closed)
      }
      const manifest = manifests.get(key)
      if (!manifest) return error(404, "MANIFEST_UNKNOWN")
      return new Response(request.method === "HEAD" ? null : manifest.bytes.slice(), {
        headers: {
          "content-type": manifest.type,
          "docker-content-digest": digestOf(manifest.bytes),
        },
      })
    }
    if (kind === "blobs") {
      const bytes = blobs.get(rest)
      if (!bytes) return error(404, "BLOB_UNKNOWN")
      if (request.method === "HEAD") {
        return new Response(null, { headers: { "content-length": String(bytes.length) } })
      }
      if (options.redirectBlobs) {
        return new Response(null, {
          status: 307,
          headers: { location: `http://127.0.0.1:${cdn.port}/${rest}` },
        })
      }
      if (hostile.blobStallsAfter !== undefined) {
        return ranged(request, bytes) ?? stalled(bytes, hostile.blobStallsAfter, 200, closed)
      }
      return ranged(request, bytes) ?? new Response(bytes.slice())
    }
    // Uploads.
    if (request.method === "POST") {
      const id = crypto.randomUUID()
      uploads.set(id, [])
      return new Response(null, {
        status: 202,
        headers: { location: `/v2/${repository}/blobs/uploads/${id}`, range: "0-0" },
      })
    }
    const parts = uploads.get(rest)
    if (!parts) return error(404, "BLOB_UPLOAD_UNKNOWN")
    if (request.method === "PATCH") {
      parts.push(new Uint8Array(await request.arrayBuffer()))
      const size = parts.reduce((n, part) => n + part.length, 0)
      return new Response(null, {
        status: 202,
        headers: { location: `/v2/${repository}/blobs/uploads/${rest}`, range: `0-${size - 1}` },
      })
    }
    if (request.method === "PUT") {
      const bytes = concat([...parts, new Uint8Array(await request.arrayBuffer())])
      const digest = url.searchParams.get("digest") ?? ""
      if (digestOf(bytes) !== digest) return error(400, "DIGEST_INVALID")
      blobs.set(digest, bytes)
      uploads.delete(rest)
      return new Response(null, { status: 201, headers: { "docker-content-digest": digest } })
    }
    return error(405, "UNSUPPORTED")
  })

  return {
    host: `127.0.0.1:${registry.port}`,
    seen,
    blobs,
    manifests,
    hostile,
    close: async () => {
      release()
      await Promise.all([
        registry.server.shutdown(),
        token.server.shutdown(),
        cdn.server.shutdown(),
      ])
    },
  }
}

/** A test named `name` with a fake registry of its own, closed when the test ends. */
export const withFakeRegistry = (
  name: string,
  options: FakeRegistryOptions,
  body: (registry: FakeRegistry) => Promise<void>,
) =>
  Deno.test(name, async () => {
    const registry = startFakeRegistry(options)
    try {
      await body(registry)
    } finally {
      await registry.close()
    }
  })
