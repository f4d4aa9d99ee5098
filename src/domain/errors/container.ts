/**
 * The errors of reading a container image as an ADD source (`docker://…`, `oci:…`,
 * `oci-archive:…`, `docker-archive:…`): one sentence each naming the source as written and what
 * is wrong with it. Schema values: they cross `--progress json` as the store's errors do.
 */
import * as Schema from "effect/Schema"
import { RegistryError } from "./registry.ts"

/** The source, or a file, image or blob it must hold, is not there. */
export class ContainerImageNotFound
  extends Schema.TaggedError<ContainerImageNotFound>()("ContainerImageNotFound", {
    source: Schema.String,
    /** What is missing: `the file index.json`, `an image tagged '2'`, `blob sha256:…`. */
    missing: Schema.String,
  }) {
  override get message() {
    return `Container image ${this.source} has no ${this.missing}`
  }
}

/** A blob (layer, config or manifest) whose bytes do not hash to the digest naming it. */
export class ContainerBlobCorrupt
  extends Schema.TaggedError<ContainerBlobCorrupt>()("ContainerBlobCorrupt", {
    source: Schema.String,
    digest: Schema.String,
    actual: Schema.String,
  }) {
  override get message() {
    return `Container image ${this.source} has a corrupt blob ${this.digest}: its bytes hash to ` +
      this.actual
  }
}

/** The index has no entry for the platform asked for; `reason` lists those it has. */
export class ContainerPlatformMissing
  extends Schema.TaggedError<ContainerPlatformMissing>()("ContainerPlatformMissing", {
    source: Schema.String,
    platform: Schema.String,
    reason: Schema.String,
  }) {
  override get message() {
    return `Container image ${this.source} cannot be used for ${this.platform}: ${this.reason}`
  }
}

/** The image's config names another platform than the one asked for. */
export class ContainerPlatformMismatch
  extends Schema.TaggedError<ContainerPlatformMismatch>()("ContainerPlatformMismatch", {
    source: Schema.String,
    platform: Schema.String,
    configured: Schema.String,
  }) {
  override get message() {
    return `Container image ${this.source} is for ${this.configured}, not ${this.platform} as asked`
  }
}

/** A manifest asked for by digest whose bytes hash to another one. */
export class ContainerManifestTampered
  extends Schema.TaggedError<ContainerManifestTampered>()("ContainerManifestTampered", {
    source: Schema.String,
    expected: Schema.String,
    actual: Schema.String,
  }) {
  override get message() {
    return `Container image ${this.source} sent a manifest hashing to ${this.actual} ` +
      `instead of ${this.expected}`
  }
}

/** A manifest, config or layer of a kind this reader does not take (Docker schema 1, a foreign layer). */
export class ContainerMediaTypeUnsupported
  extends Schema.TaggedError<ContainerMediaTypeUnsupported>()("ContainerMediaTypeUnsupported", {
    source: Schema.String,
    /** What has it: `its manifest`, `layer sha256:…`. */
    what: Schema.String,
    mediaType: Schema.String,
    hint: Schema.String,
  }) {
  override get message() {
    return `Container image ${this.source} has ${this.what} of unsupported type ` +
      `'${this.mediaType}'${this.hint === "" ? "" : ` (${this.hint})`}`
  }
}

/** A JSON document of the image (index, manifest, config, manifest.json) that is not what it should be. */
export class ContainerJsonMalformed
  extends Schema.TaggedError<ContainerJsonMalformed>()("ContainerJsonMalformed", {
    source: Schema.String,
    document: Schema.String,
    reason: Schema.String,
  }) {
  override get message() {
    return `Container image ${this.source} has a malformed ${this.document}: ${this.reason}`
  }
}

/** A path of the source that cannot be used: a symlink leaving the build context, an unreadable file. */
export class ContainerSourceUnreadable
  extends Schema.TaggedError<ContainerSourceUnreadable>()("ContainerSourceUnreadable", {
    source: Schema.String,
    path: Schema.String,
    reason: Schema.String,
  }) {
  override get message() {
    return `Container image ${this.source} cannot be read at ${this.path}: ${this.reason}`
  }
}

/** A layer's bytes that do not decompress as they claim to be compressed. */
export class ContainerLayerUndecodable
  extends Schema.TaggedError<ContainerLayerUndecodable>()("ContainerLayerUndecodable", {
    source: Schema.String,
    digest: Schema.String,
    reason: Schema.String,
  }) {
  override get message() {
    return `Container image ${this.source} has layer ${this.digest} that cannot be decompressed: ` +
      this.reason
  }
}

export const ContainerImageError = Schema.Union(
  ContainerImageNotFound,
  ContainerBlobCorrupt,
  ContainerPlatformMissing,
  ContainerPlatformMismatch,
  ContainerManifestTampered,
  ContainerMediaTypeUnsupported,
  ContainerJsonMalformed,
  ContainerSourceUnreadable,
  ContainerLayerUndecodable,
  RegistryError,
)
/** Every way reading a container image source can fail (a registry's own errors among them). */
export type ContainerImageError = typeof ContainerImageError.Type
