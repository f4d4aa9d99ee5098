/**
 * The OCI (and Docker v2) manifests a disk image travels in: a KubeVirt containerDisk (a container
 * image whose layer holds `disk/disk.img`) or an OCI artifact (the disk as the single layer), and
 * how a pulled manifest is read back into the one disk it carries.
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"

export const MediaType = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  ociEmpty: "application/vnd.oci.empty.v1+json",
  ociLayerTar: "application/vnd.oci.image.layer.v1.tar",
  /** transient's artifacts: the artifact type, and its layer (the qcow2, zstd-compressed). */
  diskArtifact: "application/vnd.transient.disk.v1",
  diskLayer: "application/vnd.transient.disk.layer.v1.qcow2+zstd",
  /** A build cache (`--cache-to`): the map of step keys to layers, and each layer. */
  cacheArtifact: "application/vnd.transient.cache.v1",
  cacheLayer: "application/vnd.transient.cache.layer.v1.qcow2",
} as const

/** What each layer of a build cache says about itself. */
export const CacheAnnotation = {
  key: "io.transient.cache.key",
  parent: "io.transient.cache.parent",
  /** What the layer was written on: its parent's digest, or a first layer's base identity. */
  parentDigest: "io.transient.cache.parent-digest",
  text: "io.transient.cache.text",
} as const

/** One step layer of a build cache. */
export interface CacheEntry {
  readonly key: string
  /** The parent's key; absent for a first layer. */
  readonly parent: string | undefined
  /** What its layer was written on (absent for a first layer of `FROM scratch`). */
  readonly parentDigest: string | undefined
  readonly text: string
  readonly digest: string
  readonly size: number
}

/** The most layers one cache manifest maps. */
export const MAX_CACHE_ENTRIES = 256

/** The entries of a build cache's manifest; Left when it is not one. */
export const cacheEntries = (
  manifest: Manifest,
): Either.Either<ReadonlyArray<CacheEntry>, string> => {
  if (manifest.artifactType !== MediaType.cacheArtifact) {
    return Either.left(
      manifest.artifactType === undefined
        ? "its manifest is a container image's"
        : `its artifact type is ${manifest.artifactType}`,
    )
  }
  const entries: Array<CacheEntry> = []
  for (const layer of manifest.layers) {
    const key = layer.annotations?.[CacheAnnotation.key]
    if (layer.mediaType !== MediaType.cacheLayer || !DIGEST.test(layer.digest)) continue
    if (key === undefined || !/^[0-9a-f]{64}$/.test(key)) continue
    const parent = layer.annotations?.[CacheAnnotation.parent]
    const parentDigest = layer.annotations?.[CacheAnnotation.parentDigest]
    entries.push({
      key,
      parent: parent === undefined || parent === "" ? undefined : parent,
      parentDigest: parentDigest === undefined || parentDigest === "" ? undefined : parentDigest,
      text: layer.annotations?.[CacheAnnotation.text] ?? "",
      digest: layer.digest,
      size: layer.size,
    })
  }
  return Either.right(entries)
}

/** The manifest of a build cache mapping `entries`. */
export const cacheManifest = (empty: Blob, entries: ReadonlyArray<CacheEntry>) => ({
  schemaVersion: 2,
  mediaType: MediaType.ociManifest,
  artifactType: MediaType.cacheArtifact,
  config: descriptor(MediaType.ociEmpty, empty.digest, empty.size),
  layers: entries.slice(0, MAX_CACHE_ENTRIES).map((entry) => ({
    ...descriptor(MediaType.cacheLayer, entry.digest, entry.size),
    annotations: {
      [CacheAnnotation.key]: entry.key,
      [CacheAnnotation.parent]: entry.parent ?? "",
      [CacheAnnotation.parentDigest]: entry.parentDigest ?? "",
      // The text is for people reading the manifest; a long RUN is cut.
      [CacheAnnotation.text]: entry.text.length > 500 ? `${entry.text.slice(0, 500)}…` : entry.text,
    },
  })),
})

/** Everything a manifest request accepts, best first. */
export const MANIFEST_ACCEPT = [
  MediaType.ociManifest,
  MediaType.ociIndex,
  MediaType.dockerManifest,
  MediaType.dockerList,
].join(", ")

/** The annotation naming a layer's file, as ORAS and Podman write it. */
export const TITLE = "org.opencontainers.image.title"

const Annotations = Schema.Record({ key: Schema.String, value: Schema.String })

export const Descriptor = Schema.Struct({
  mediaType: Schema.String,
  digest: Schema.String,
  size: Schema.Number,
  annotations: Schema.optional(Annotations),
  platform: Schema.optional(Schema.Struct({
    architecture: Schema.String,
    os: Schema.String,
    variant: Schema.optional(Schema.String),
  })),
  artifactType: Schema.optional(Schema.String),
})
export type Descriptor = typeof Descriptor.Type

export const Manifest = Schema.Struct({
  schemaVersion: Schema.Literal(2),
  mediaType: Schema.optional(Schema.String),
  artifactType: Schema.optional(Schema.String),
  config: Descriptor,
  layers: Schema.Array(Descriptor),
  annotations: Schema.optional(Annotations),
})
export type Manifest = typeof Manifest.Type

export const Index = Schema.Struct({
  schemaVersion: Schema.Literal(2),
  mediaType: Schema.optional(Schema.String),
  manifests: Schema.Array(Descriptor),
})
export type Index = typeof Index.Type

/** A manifest or an index, told apart by their fields as the registry may not say. */
export const ManifestOrIndex = Schema.Union(Manifest, Index)

export const isIndex = (value: Manifest | Index): value is Index => "manifests" in value

const DIGEST = /^sha256:[a-f0-9]{64}$/

/** The entry of an index to pull: this host's platform, else the only entry. */
export const chooseFromIndex = (index: Index): Either.Either<Descriptor, string> => {
  const valid = index.manifests.filter((entry) => DIGEST.test(entry.digest))
  const native = valid.find((entry) =>
    entry.platform?.os === "linux" && entry.platform.architecture === "amd64"
  )
  if (native) return Either.right(native)
  const [only, ...others] = valid
  if (only !== undefined && others.length === 0) return Either.right(only)
  return Either.left(
    valid.length === 0
      ? "its index lists no manifest"
      : "its index lists no linux/amd64 manifest among several",
  )
}

const TAR_LAYER =
  /^application\/vnd\.(?:oci\.image\.layer\.v1\.tar(?:\+(?:gzip|zstd))?|docker\.image\.rootfs\.diff\.tar(?:\.gzip)?)$/
const DISK_FILE = /\.(?:qcow2|img|raw)(?:\.(?:gz|xz|zst|bz2))?$/i

/** Where the disk is in a pulled manifest. */
export type DiskLayout =
  /** A container image: the disk is the one file under `disk/` in one of `layers` (last first). */
  | { readonly _tag: "ContainerDisk"; readonly layers: ReadonlyArray<Descriptor> }
  /** An artifact: `layer` is the disk itself (perhaps compressed). */
  | { readonly _tag: "Artifact"; readonly layer: Descriptor }

/**
 * The most layers a pulled image's manifest may have: a container image's layers are tried one
 * by one for the disk, and an image with more than Docker's own limit (127) is no containerDisk.
 */
export const MAX_IMAGE_LAYERS = 128

/** The layout of `manifest`, or why it carries no disk image. */
export const diskLayout = (manifest: Manifest): Either.Either<DiskLayout, string> => {
  if (manifest.layers.length > MAX_IMAGE_LAYERS) {
    return Either.left(
      `it has ${manifest.layers.length} layers, more than the ${MAX_IMAGE_LAYERS} a disk image may have`,
    )
  }
  const bad = [manifest.config, ...manifest.layers].find((entry) => !DIGEST.test(entry.digest))
  if (bad !== undefined) return Either.left(`it has a blob with digest '${bad.digest}'`)
  const configType = manifest.config.mediaType
  const image = manifest.artifactType === undefined &&
    (configType === MediaType.ociConfig || configType === MediaType.dockerConfig)
  if (image) {
    const layers = manifest.layers.filter((layer) => TAR_LAYER.test(layer.mediaType))
    if (layers.length === 0) return Either.left("it is a container image with no layers")
    return Either.right({ _tag: "ContainerDisk", layers: [...layers].reverse() })
  }
  const artifactType = manifest.artifactType ?? configType
  const [layer, ...others] = manifest.layers
  if (layer === undefined) return Either.left(`it is an artifact (${artifactType}) with no layers`)
  const title = layer.annotations?.[TITLE] ?? ""
  const known = artifactType === MediaType.diskArtifact ||
    layer.mediaType === MediaType.diskLayer ||
    DISK_FILE.test(title)
  if (!known) {
    return Either.left(
      `it is an artifact of unknown type '${artifactType}' (expected ${MediaType.diskArtifact}, ` +
        "or a layer titled *.qcow2, *.img or *.raw)",
    )
  }
  if (others.length > 0) {
    return Either.left(`it is a disk artifact with ${manifest.layers.length} layers (expected one)`)
  }
  return Either.right({ _tag: "Artifact", layer })
}

/** Whether `path` (a tar entry) is a file under a containerDisk's `disk/` directory. */
export const isContainerDiskEntry = (path: string): boolean => {
  const normal = path.replace(/^(?:\.\/|\/)+/, "")
  return normal.startsWith("disk/") && normal.length > "disk/".length &&
    !normal.slice("disk/".length).includes("/")
}

/** The owner KubeVirt's containerDisk reader runs as (the `qemu` user). */
export const CONTAINER_DISK_OWNER = 107

/** What an image's manifest says about where it came from. */
export interface Provenance {
  readonly name: string
  readonly created: string
  readonly version: string
  readonly imagefileDigest: string | undefined
}

const annotationsOf = (provenance: Provenance): Record<string, string> => ({
  "org.opencontainers.image.created": provenance.created,
  "io.transient.image.name": provenance.name,
  "io.transient.version": provenance.version,
  ...(provenance.imagefileDigest === undefined
    ? {}
    : { "io.transient.imagefile.digest": provenance.imagefileDigest }),
})

const descriptor = (mediaType: string, digest: string, size: number) => ({
  mediaType,
  digest,
  size,
})

/** The bytes of a JSON document as a registry stores them. */
export const jsonBytes = (value: unknown): Uint8Array =>
  new TextEncoder().encode(JSON.stringify(value))

/** A containerDisk's image config: one uncompressed layer, whose digest is its diff id. */
export const containerDiskConfig = (layerDigest: string, provenance: Provenance) => ({
  architecture: "amd64",
  os: "linux",
  created: provenance.created,
  config: { Labels: annotationsOf(provenance) },
  rootfs: { type: "layers", diff_ids: [layerDigest] },
  history: [{ created: provenance.created, created_by: `transient ${provenance.version}` }],
})

export interface Blob {
  readonly digest: string
  readonly size: number
}

/** The manifest of a containerDisk: the config blob and the tar layer holding `disk/disk.img`. */
export const containerDiskManifest = (config: Blob, layer: Blob, provenance: Provenance) => ({
  schemaVersion: 2,
  mediaType: MediaType.ociManifest,
  config: descriptor(MediaType.ociConfig, config.digest, config.size),
  layers: [descriptor(MediaType.ociLayerTar, layer.digest, layer.size)],
  annotations: annotationsOf(provenance),
})

/** The empty config of an artifact (OCI image spec 1.1): the two bytes `{}`. */
export const EMPTY_CONFIG = new TextEncoder().encode("{}")

/** The manifest of a disk artifact: the compressed qcow2 as its one layer, titled `fileName`. */
export const diskArtifactManifest = (
  empty: Blob,
  layer: Blob,
  fileName: string,
  provenance: Provenance,
) => ({
  schemaVersion: 2,
  mediaType: MediaType.ociManifest,
  artifactType: MediaType.diskArtifact,
  config: descriptor(MediaType.ociEmpty, empty.digest, empty.size),
  layers: [{
    ...descriptor(MediaType.diskLayer, layer.digest, layer.size),
    annotations: { [TITLE]: fileName },
  }],
  annotations: annotationsOf(provenance),
})

/** Manifests are small; a larger answer is not one. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024

/** The manifest or index in `bytes`; Left when they are not JSON of either. */
export const decodeManifestOrIndex = (bytes: Uint8Array): Either.Either<Manifest | Index, void> =>
  Either.try(() => JSON.parse(new TextDecoder().decode(bytes)) as unknown).pipe(
    Either.flatMap((json) => Schema.decodeUnknownEither(ManifestOrIndex)(json)),
    Either.mapLeft(() => undefined),
  )

/** The layers that may hold the disk of `layout`, in the order to try them. */
export const diskCandidates = (layout: DiskLayout): ReadonlyArray<Descriptor> =>
  layout._tag === "Artifact" ? [layout.layer] : layout.layers

/**
 * The longest run of `keys` from `from` that `entries` chain together, each made on the one
 * before it: its parent's key and digest are those of the layer below (`below`, the layer under
 * `keys[from]`; for a first layer, its parent digest is `base`, the base image's identity).
 */
export const chainIn = (
  entries: ReadonlyArray<CacheEntry>,
  keys: ReadonlyArray<string>,
  from: number,
  below: { readonly key: string; readonly digest: string } | undefined,
  base: string | undefined,
): ReadonlyArray<CacheEntry> => {
  const chain: Array<CacheEntry> = []
  let parent = below
  for (const key of keys.slice(from)) {
    const parentDigest = parent === undefined ? base : parent.digest
    const entry = entries.find((candidate) =>
      candidate.key === key && candidate.parent === parent?.key &&
      candidate.parentDigest === parentDigest
    )
    if (entry === undefined) break
    chain.push(entry)
    parent = entry
  }
  return chain
}

/**
 * What to take from a build cache's `entries` to extend the verified local chain `local` (the
 * leading layers of `keys`): the run that makes the longest chain with the local layers under
 * it, starting at `from`. Each remote layer sits on the bytes it was made on, so where the
 * local layers differ from the remote ones, the remote ones below are taken too; where they
 * are the same (one digest), the local ones are kept.
 */
export const remoteRun = (
  entries: ReadonlyArray<CacheEntry>,
  keys: ReadonlyArray<string>,
  local: ReadonlyArray<{ readonly key: string; readonly digest: string }>,
  base: string | undefined,
): { readonly from: number; readonly chain: ReadonlyArray<CacheEntry> } => {
  let best = { from: local.length, chain: [] as ReadonlyArray<CacheEntry> }
  for (let from = 0; from <= local.length; from++) {
    const chain = chainIn(entries, keys, from, local[from - 1], base)
    if (
      from + chain.length >= best.from + best.chain.length && from + chain.length > local.length
    ) {
      best = { from, chain }
    }
  }
  return best
}

/**
 * The map a build cache holds after a push of `pushed`: this build's chain, then what `existing`
 * held for other builds.
 */
export const mergedCacheEntries = (
  pushed: ReadonlyArray<CacheEntry>,
  existing: ReadonlyArray<CacheEntry>,
): ReadonlyArray<CacheEntry> => [
  ...pushed,
  ...existing.filter((entry) => !pushed.some((mine) => mine.key === entry.key)),
]

/** The entries of the build cache whose manifest is `bytes`; Left is why it is not one. */
export const decodeCacheMap = (
  bytes: Uint8Array,
): Either.Either<ReadonlyArray<CacheEntry>, string> =>
  Either.try(() => JSON.parse(new TextDecoder().decode(bytes)) as unknown).pipe(
    Either.flatMap((json) => Schema.decodeUnknownEither(Manifest)(json)),
    Either.mapLeft(() => "its manifest is not an OCI image manifest"),
    Either.flatMap(cacheEntries),
  )
