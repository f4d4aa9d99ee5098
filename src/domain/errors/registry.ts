/**
 * The errors of talking to an OCI registry: one sentence each that says what to do, as Schema
 * values (they cross `--progress json` like the store's errors).
 */
import * as Schema from "effect/Schema"
import { NothingArrived } from "./network.ts"

/** The registry cannot be reached at all (refused, no such host, TLS failure). */
export class RegistryUnreachable
  extends Schema.TaggedError<RegistryUnreachable>()("RegistryUnreachable", {
    registry: Schema.String,
    url: Schema.String,
    reason: Schema.String,
  }) {
  override get message() {
    const hint = this.url.startsWith("https:")
      ? " (for a registry without TLS, add it to TRANSIENT_INSECURE_REGISTRIES or pass --plain-http)"
      : ""
    return `Cannot reach registry ${this.registry} at ${this.url}: ${this.reason}${hint}`
  }
}

/** The registry refused the credentials, or asked for some and none were found. */
export class RegistryUnauthorized
  extends Schema.TaggedError<RegistryUnauthorized>()("RegistryUnauthorized", {
    registry: Schema.String,
    repository: Schema.String,
    action: Schema.Literal("pull", "push"),
    /** Where credentials were looked for, and which one was sent. */
    tried: Schema.String,
  }) {
  override get message() {
    return `Registry ${this.registry} refused to let us ${this.action} ${this.repository} ` +
      `(${this.tried})`
  }
}

/** The repository, the tag or the digest is not in the registry. */
export class RegistryNotFound extends Schema.TaggedError<RegistryNotFound>()("RegistryNotFound", {
  reference: Schema.String,
  what: Schema.Literal("repository", "tag", "digest", "blob"),
  /** The repository, tag, digest or blob that is missing. */
  name: Schema.String,
}) {
  override get message() {
    const what = {
      repository: `has no repository '${this.name}'`,
      tag: `has no tag '${this.name}' in that repository`,
      digest: `has no manifest ${this.name} in that repository`,
      blob: `lacks the blob ${this.name} its manifest lists`,
    }[this.what]
    return `The registry of ${this.reference} ${what}`
  }
}

/** Any other answer the registry gave that is not what the protocol calls for. */
export class RegistryRefused extends Schema.TaggedError<RegistryRefused>()("RegistryRefused", {
  registry: Schema.String,
  /** What was being done: `upload blob sha256:…`, `fetch the manifest of …`. */
  operation: Schema.String,
  status: Schema.optional(Schema.Number),
  /** The registry's own error text, or what is wrong with its answer. */
  detail: Schema.String,
}) {
  override get message() {
    const status = this.status === undefined ? "" : ` HTTP ${this.status}:`
    return `Registry ${this.registry} failed to ${this.operation}:${status} ${this.detail}`
  }
}

/** The registry sent nothing for the network timeout, and again each time it was asked anew. */
export class RegistryStalled extends Schema.TaggedError<RegistryStalled>()("RegistryStalled", {
  registry: Schema.String,
  /** What was being done: `fetch the manifest of …`, `download blob sha256:… of …`. */
  operation: Schema.String,
  /** The URL that went silent. */
  url: Schema.String,
  cause: NothingArrived,
}) {
  override get message() {
    return `Registry ${this.registry} went silent when asked to ${this.operation}: ` +
      this.cause.message
  }
}

/** A blob's bytes do not hash to the digest they were sent under: the upload is not finished. */
export class RegistryDigestMismatch
  extends Schema.TaggedError<RegistryDigestMismatch>()("RegistryDigestMismatch", {
    registry: Schema.String,
    expected: Schema.String,
    actual: Schema.String,
  }) {
  override get message() {
    return `Registry ${this.registry} was not sent blob ${this.expected}: the bytes read hash to ` +
      this.actual
  }
}

/** A blob download that broke off, and broke off again each time it was resumed. */
export class RegistryTransferInterrupted
  extends Schema.TaggedError<RegistryTransferInterrupted>()("RegistryTransferInterrupted", {
    registry: Schema.String,
    digest: Schema.String,
    cause: Schema.Defect,
  }) {
  override get message() {
    return `The download of blob ${this.digest} from ${this.registry} broke off`
  }
}

/** The bytes of a blob to upload could not be read (the file went away or changed meanwhile). */
export class BlobUnreadable extends Schema.TaggedError<BlobUnreadable>()("BlobUnreadable", {
  cause: Schema.Defect,
}) {
  override get message() {
    return `Cannot read the blob to upload: ${String(this.cause)}`
  }
}

/** The manifest carries no disk image transient can use. */
export class NotADiskImage extends Schema.TaggedError<NotADiskImage>()("NotADiskImage", {
  reference: Schema.String,
  reason: Schema.String,
}) {
  override get message() {
    return `${this.reference} is not a disk image: ${this.reason}`
  }
}

/** The disk of an artifact could not be compressed. */
export class CompressionFailed
  extends Schema.TaggedError<CompressionFailed>()("CompressionFailed", {
    image: Schema.String,
    detail: Schema.String,
  }) {
  override get message() {
    return `Cannot compress '${this.image}' with zstd: ${this.detail}`
  }
}

/** A `--cache-from` reference whose manifest is no build cache. */
export class NotABuildCache extends Schema.TaggedError<NotABuildCache>()("NotABuildCache", {
  reference: Schema.String,
  reason: Schema.String,
}) {
  override get message() {
    return `${this.reference} is not a transient build cache: ${this.reason}`
  }
}

/** A registry reference (`image push REF`, `--cache-to REF`, `--cache-from REF`) that is none. */
export class InvalidOciReference
  extends Schema.TaggedError<InvalidOciReference>()("InvalidOciReference", {
    reference: Schema.String,
    reason: Schema.String,
  }) {
  override get message() {
    return `Invalid registry reference '${this.reference}': ${this.reason}`
  }
}

export const RegistryError = Schema.Union(
  RegistryUnreachable,
  RegistryUnauthorized,
  RegistryNotFound,
  RegistryRefused,
  RegistryDigestMismatch,
  RegistryTransferInterrupted,
  RegistryStalled,
)
/** Every way talking to a registry can fail. */
export type RegistryError = typeof RegistryError.Type
