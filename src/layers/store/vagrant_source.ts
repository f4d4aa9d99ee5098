/**
 * A Vagrant box as an image source: found through the Vagrant Cloud API (its `libvirt` provider,
 * else `qemu`), downloaded as a box archive, verified against the checksum the API publishes.
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { VagrantBox } from "../../domain/image_spec.ts"
import {
  type SourceUnavailable,
  VagrantMetadataUnavailable,
  VagrantVersionNotFound,
} from "../../domain/errors/store.ts"
import { describeLimit } from "../../domain/registry_protocol.ts"
import { boundedBody } from "../network_reads.ts"
import { get, type OpenedSource, openUrl } from "./sources.ts"

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

const HOST_ARCHITECTURES = new Set(["amd64", "x86_64"])

/** The provider to download: libvirt (else qemu), for this host's architecture when listed. */
const chooseProvider = (
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

/** Boxes with many versions and providers have large descriptions; none comes near this. */
export const MAX_VAGRANT_METADATA_BYTES = 16 * 1024 * 1024

/**
 * The box's archive from the API at `apiBase`, downloading until the scope closes; no read
 * brings nothing for longer than `timeout`.
 */
export const openVagrantBox = (
  image: string,
  apiBase: string,
  { box, version }: VagrantBox,
  timeout: Duration.Duration,
): Effect.Effect<
  OpenedSource,
  VagrantMetadataUnavailable | VagrantVersionNotFound | SourceUnavailable,
  HttpClient.HttpClient | Scope.Scope
> =>
  Effect.gen(function* () {
    const metadataUrl = `${apiBase.replace(/\/+$/, "")}/api/v1/box/${box}`
    const response = yield* get(image, metadataUrl, timeout).pipe(
      Effect.mapError(({ status, statusText, cause }) =>
        new VagrantMetadataUnavailable({
          image,
          box,
          problem: "Download",
          status,
          statusText,
          cause,
        })
      ),
    )
    const unreadable = (cause: unknown) =>
      new VagrantMetadataUnavailable({ image, box, problem: "Download", cause })
    const bytes = yield* boundedBody(response.stream, {
      limit: MAX_VAGRANT_METADATA_BYTES,
      timeout,
      tooLarge: () =>
        unreadable(
          new Error(`larger than the ${describeLimit(MAX_VAGRANT_METADATA_BYTES)} limit`),
        ),
      stalled: unreadable,
    }).pipe(
      Effect.catchTag("ResponseError", (error) =>
        new VagrantMetadataUnavailable({
          image,
          box,
          problem: "NotJson",
          cause: error.cause ?? error,
        })),
    )
    const json = yield* Effect.try({
      try: (): unknown => JSON.parse(new TextDecoder().decode(bytes)),
      catch: (cause) => new VagrantMetadataUnavailable({ image, box, problem: "NotJson", cause }),
    })
    const info = yield* Schema.decodeUnknown(VagrantBoxInfo)(json).pipe(
      Effect.mapError((cause) =>
        new VagrantMetadataUnavailable({ image, box, problem: "Malformed", cause })
      ),
    )
    const provider = chooseProvider(info, version)
    if (provider === undefined) {
      return yield* new VagrantVersionNotFound({ image, box: info.tag, version })
    }
    const opened = yield* openUrl(image, provider.download_url, timeout)
    const checksum = provider.checksum && provider.checksum_type
      ? { type: provider.checksum_type.toLowerCase(), value: provider.checksum.toLowerCase() }
      : undefined
    return { ...opened, archive: "VagrantBox", ...(checksum ? { checksum } : {}) }
  })
