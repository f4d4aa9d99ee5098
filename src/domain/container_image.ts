/**
 * The documents of a container image read as an ADD source: its config (what it was built for,
 * and the digests of its uncompressed layers), a `docker save` archive's manifest.json, and the
 * layer media types taken with the compression each says it has.
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { MediaType } from "./oci_manifest.ts"
import { formatPlatform, normalizePlatform, type Platform } from "./platform.ts"

const Strings = Schema.Array(Schema.String)
const nullable = <S extends Schema.Schema.Any>(schema: S) => Schema.optional(Schema.NullOr(schema))

/** An image config, OCI's or Docker's (the same fields); only what is recorded is read. */
export const ImageConfig = Schema.Struct({
  os: Schema.String,
  architecture: Schema.String,
  variant: Schema.optional(Schema.String),
  created: Schema.optional(Schema.String),
  config: nullable(Schema.Struct({
    Env: nullable(Strings),
    WorkingDir: nullable(Schema.String),
    Entrypoint: nullable(Strings),
    Cmd: nullable(Strings),
    Labels: nullable(Schema.Record({ key: Schema.String, value: Schema.String })),
  })),
  rootfs: Schema.Struct({
    type: Schema.Literal("layers"),
    diff_ids: Strings,
  }),
})
export type ImageConfig = typeof ImageConfig.Type

const DIGEST = /^sha256:[a-f0-9]{64}$/

/** Parse JSON `bytes` with `schema`; the Left is one phrase saying what is wrong. */
export const decodeJson = <A, I>(schema: Schema.Schema<A, I>) =>
(
  bytes: Uint8Array,
): Either.Either<A, string> =>
  Either.try({
    try: () => JSON.parse(new TextDecoder().decode(bytes)) as unknown,
    catch: () => "it is not JSON",
  }).pipe(
    Either.flatMap((json) =>
      Either.mapLeft(
        Schema.decodeUnknownEither(schema)(json),
        (error) => error.message.split("\n").slice(0, 3).join(" "),
      )
    ),
  )

/**
 * What of an image's config a VM image's record keeps (it applies none of it): what a user may
 * want to see again.
 */
export const RecordedImageConfig = Schema.Struct({
  env: Schema.optionalWith(Strings, { exact: true }),
  workingDir: Schema.optionalWith(Schema.String, { exact: true }),
  entrypoint: Schema.optionalWith(Strings, { exact: true }),
  cmd: Schema.optionalWith(Strings, { exact: true }),
  labels: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), {
    exact: true,
  }),
  created: Schema.optionalWith(Schema.String, { exact: true }),
})
export type RecordedImageConfig = typeof RecordedImageConfig.Type

/** What an image's config says, as far as a VM image records it, and its platform. */
export type ContainerImageConfig = RecordedImageConfig & {
  readonly os: string
  readonly architecture: string
  readonly variant?: string
}

/** The config as recorded: the fields an image's user may want to see again. */
export const recordedConfig = (config: ImageConfig): ContainerImageConfig => {
  const inner = config.config ?? {}
  return {
    os: config.os,
    architecture: config.architecture,
    ...(config.variant === undefined || config.variant === "" ? {} : { variant: config.variant }),
    ...(inner.Env == null ? {} : { env: inner.Env }),
    ...(inner.WorkingDir == null || inner.WorkingDir === ""
      ? {}
      : { workingDir: inner.WorkingDir }),
    ...(inner.Entrypoint == null ? {} : { entrypoint: inner.Entrypoint }),
    ...(inner.Cmd == null ? {} : { cmd: inner.Cmd }),
    ...(inner.Labels == null ? {} : { labels: inner.Labels }),
    ...(config.created === undefined ? {} : { created: config.created }),
  }
}

/** Why `config` does not serve `platform` (both named), or undefined when it does. */
export const platformMismatch = (
  config: ImageConfig,
  platform: Platform,
): { readonly wanted: string; readonly configured: string } | undefined => {
  const configured = normalizePlatform(config)
  const wanted = normalizePlatform(platform)
  const same = configured.os === wanted.os && configured.architecture === wanted.architecture &&
    // An image that names no variant runs on every variant of its architecture.
    (configured.variant === undefined || configured.variant === wanted.variant)
  return same
    ? undefined
    : { wanted: formatPlatform(wanted), configured: formatPlatform(configured) }
}

/** The diff ids of `config`, each a sha256 digest; Left names a bad one. */
export const diffIdsOf = (config: ImageConfig): Either.Either<ReadonlyArray<string>, string> => {
  const bad = config.rootfs.diff_ids.find((id) => !DIGEST.test(id))
  return bad === undefined
    ? Either.right(config.rootfs.diff_ids)
    : Either.left(`its diff id '${bad}' is not a sha256 digest`)
}

export type LayerCompression = "gzip" | "zstd" | "none"

const DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"

/** Media types of manifests that are Docker's schema 1, refused with a hint. */
export const SCHEMA1_MEDIA_TYPES: ReadonlyArray<string> = [
  "application/vnd.docker.distribution.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v1+prettyjws",
]

/**
 * The compression a layer's media type says it has, or undefined for a media type that is no
 * layer of a root filesystem (a foreign layer, an artifact's blob).
 */
export const layerCompression = (mediaType: string): LayerCompression | undefined => {
  switch (mediaType) {
    case MediaType.ociLayerTar:
    case DOCKER_LAYER:
      return "none"
    case `${MediaType.ociLayerTar}+gzip`:
    case `${DOCKER_LAYER}.gzip`:
      return "gzip"
    case `${MediaType.ociLayerTar}+zstd`:
    case `${DOCKER_LAYER}.zstd`:
      return "zstd"
    default:
      return undefined
  }
}

/** The media type given to the layers of a `docker save` archive, which names none. */
export const DOCKER_ARCHIVE_LAYER = DOCKER_LAYER

/** A `docker save` / `podman save` archive's `manifest.json`: one entry per image. */
export const DockerArchiveManifest = Schema.Array(Schema.Struct({
  Config: Schema.String,
  RepoTags: nullable(Strings),
  Layers: Strings,
}))
export type DockerArchiveManifest = typeof DockerArchiveManifest.Type

/** The one image of an archive's manifest.json; Left says why there is not exactly one. */
export const onlyArchivedImage = (
  manifest: DockerArchiveManifest,
): Either.Either<DockerArchiveManifest[number], string> => {
  const [only, ...others] = manifest
  if (only === undefined) return Either.left("it lists no image")
  if (others.length > 0) {
    return Either.left(`it lists ${manifest.length} images; the archive must hold one`)
  }
  return Either.right(only)
}

/** A member name of an archive, as the manifest names it: without `./` or a leading `/`. */
export const memberName = (name: string): string => name.replace(/^(?:\.\/|\/)+/, "")
