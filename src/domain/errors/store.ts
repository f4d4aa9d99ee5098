/**
 * The image store's errors: specs and names it refuses, images it lacks, sources that fail, and
 * its own files. They cross a boundary (`--progress json`), so they are Schema values; each
 * renders as the one sentence users and scripts already know (`message`), and keeps what caused
 * it (`cause`) where something did.
 */
import * as Schema from "effect/Schema"
import { formatBytes } from "../byte_size.ts"
import { visibleName } from "../visible_name.ts"
import { failureOf, reasonOf } from "./reason.ts"

/** The compressions the store decompresses on the fly. */
export const Compression = Schema.Literal("gzip", "bzip2", "xz", "zstd")
export type Compression = typeof Compression.Type

/** An image spec that cannot be parsed (`Invalid image spec '...'` as in the original). */
export class InvalidImageSpec extends Schema.TaggedError<InvalidImageSpec>()("InvalidImageSpec", {
  spec: Schema.String,
  reason: Schema.String,
}) {
  override get message() {
    return this.reason
  }
}

/** An image of that name exists and `--force` was not given. */
export class ImageExists extends Schema.TaggedError<ImageExists>()("ImageExists", {
  name: Schema.String,
  path: Schema.String,
}) {
  override get message() {
    return `An image named '${this.name}' already exists at ${this.path} (use --force to replace it)`
  }
}

/** A name the store cannot hold (see `imageNameProblem`). */
export class InvalidImageName extends Schema.TaggedError<InvalidImageName>()("InvalidImageName", {
  name: Schema.String,
  reason: Schema.String,
}) {
  override get message() {
    return `Invalid image name '${visibleName(this.name)}' (${this.reason})`
  }
}

/** A bare name the store lacks and that spells no source (no Vagrant box version). */
export class ImageNotFound extends Schema.TaggedError<ImageNotFound>()("ImageNotFound", {
  image: Schema.String,
}) {
  override get message() {
    return `No image named '${this.image}' found in the store, and no version provided, ` +
      `so it cannot be downloaded (a Vagrant box is named owner/box:version)`
  }
}

/** A name to remove that the store does not hold. */
export class ImageNotInStore extends Schema.TaggedError<ImageNotInStore>()("ImageNotInStore", {
  image: Schema.String,
  store: Schema.String,
}) {
  override get message() {
    return `No image named '${this.image}' in ${this.store}`
  }
}

/** A `file=` source that does not exist (found without fetching, by `lookup`). */
export class SourceFileMissing
  extends Schema.TaggedError<SourceFileMissing>()("SourceFileMissing", {
    image: Schema.String,
    path: Schema.String,
  }) {
  override get message() {
    return `Image file '${this.path}' does not exist`
  }
}

/** A file that cannot be opened, or a URL whose server fails or answers with an error status. */
export class SourceUnavailable
  extends Schema.TaggedError<SourceUnavailable>()("SourceUnavailable", {
    image: Schema.String,
    protocol: Schema.Literal("file", "http"),
    /** The path or URL. */
    location: Schema.String,
    /** The HTTP status, when the server answered. */
    status: Schema.optional(Schema.Number),
    statusText: Schema.optional(Schema.String),
    /** What is wrong when nothing failed as such (`not a regular file`, `empty response`). */
    detail: Schema.optional(Schema.String),
    cause: Schema.optional(Schema.Defect),
  }) {
  override get message() {
    const verb = this.protocol === "file" ? "Cannot read" : "Cannot download"
    return `${verb} ${this.location}: ${failureOf(this)}`
  }
}

/** The Vagrant API's description of a box cannot be had, or is not what the API returns. */
export class VagrantMetadataUnavailable
  extends Schema.TaggedError<VagrantMetadataUnavailable>()("VagrantMetadataUnavailable", {
    image: Schema.String,
    box: Schema.String,
    problem: Schema.Literal("Download", "NotJson", "Malformed"),
    status: Schema.optional(Schema.Number),
    statusText: Schema.optional(Schema.String),
    cause: Schema.optional(Schema.Defect),
  }) {
  override get message() {
    if (this.problem === "Download") {
      return `Unable to download Vagrant box '${this.box}' info (${
        failureOf(this)
      }). Maybe invalid image?`
    }
    return this.problem === "NotJson"
      ? `Vagrant box '${this.box}' info is not JSON: ${reasonOf(this.cause)}`
      : `Vagrant box '${this.box}' info is not in the expected form`
  }
}

/** The Vagrant box has no such version, or none for libvirt or qemu. */
export class VagrantVersionNotFound
  extends Schema.TaggedError<VagrantVersionNotFound>()("VagrantVersionNotFound", {
    image: Schema.String,
    /** The box as the API names it. */
    box: Schema.String,
    version: Schema.String,
  }) {
  override get message() {
    return `No version '${this.version}' available for ${this.box} with provider libvirt`
  }
}

/** The source's bytes stopped before their end: a read failed, or fewer came than announced. */
export class TransferIncomplete
  extends Schema.TaggedError<TransferIncomplete>()("TransferIncomplete", {
    image: Schema.String,
    /** The source, as the user named it. */
    source: Schema.String,
    received: Schema.Number,
    expected: Schema.optional(Schema.Number),
    cause: Schema.optional(Schema.Defect),
  }) {
  override get message() {
    const what = this.cause !== undefined
      ? reasonOf(this.cause)
      : `the transfer ended after ${this.received} of ${this.expected} bytes`
    return `Cannot fetch ${this.source}: ${what}`
  }
}

/** The fetched bytes do not have the checksum given in the spec or published with the box. */
export class ChecksumMismatch extends Schema.TaggedError<ChecksumMismatch>()("ChecksumMismatch", {
  image: Schema.String,
  source: Schema.String,
  algorithm: Schema.String,
  expected: Schema.String,
  actual: Schema.String,
}) {
  override get message() {
    return `Checksum mismatch for ${this.source}: expected ${this.algorithm} ${this.expected}, ` +
      `got ${this.actual}`
  }
}

/** Compressed content that does not decompress. */
export class DecompressionFailed
  extends Schema.TaggedError<DecompressionFailed>()("DecompressionFailed", {
    image: Schema.String,
    source: Schema.String,
    compression: Compression,
    /** What the decompressing tool reported, when a tool did it. */
    detail: Schema.optional(Schema.String),
    cause: Schema.optional(Schema.Defect),
  }) {
  override get message() {
    return this.detail !== undefined
      ? `${this.compression} could not decompress the image: ${this.detail}`
      : `Cannot fetch ${this.source}: ${reasonOf(this.cause)}`
  }
}

/** The host lacks the tool that decompresses this content. */
export class DecompressorMissing
  extends Schema.TaggedError<DecompressorMissing>()("DecompressorMissing", {
    image: Schema.String,
    compression: Compression,
    tool: Schema.String,
  }) {
  override get message() {
    return `The image is ${this.compression}-compressed but '${this.tool}' is not installed`
  }
}

/** A Vagrant box archive without a `box.img`, or cut short. */
export class BoxArchiveInvalid
  extends Schema.TaggedError<BoxArchiveInvalid>()("BoxArchiveInvalid", {
    image: Schema.String,
    source: Schema.String,
    problem: Schema.Literal("Missing", "Truncated", "Oversized"),
  }) {
  override get message() {
    const what = this.problem === "Missing"
      ? "holds no box.img"
      : this.problem === "Truncated"
      ? "is truncated"
      : "has a file-name record over 1 MiB"
    return `The Vagrant box archive of ${this.source} ${what}`
  }
}

/** A fetched image with a backing file: following it would read whatever host file it names. */
export class ImageRefersToFile
  extends Schema.TaggedError<ImageRefersToFile>()("ImageRefersToFile", {
    image: Schema.String,
    source: Schema.String,
    file: Schema.String,
  }) {
  override get message() {
    return `The image from ${this.source} refers to a backing file (${this.file})`
  }
}

/** A pulled image larger than the limit, once decompressed (`image pull --max-size`). */
export class ImageTooLarge extends Schema.TaggedError<ImageTooLarge>()("ImageTooLarge", {
  image: Schema.String,
  source: Schema.String,
  limit: Schema.Number,
  /** Whether the limit is what the image's own qcow2 header allows, rather than --max-size. */
  declared: Schema.optional(Schema.Boolean),
}) {
  override get message() {
    return `The image from ${this.source} is larger than ${formatBytes(this.limit)} ` +
      (this.declared
        ? "(more than its qcow2 header declares: the file is not what it says)"
        : "(give a larger --max-size if it should be)")
  }
}

/** Not enough room in the store for the image being pulled. */
export class NotEnoughSpace extends Schema.TaggedError<NotEnoughSpace>()("NotEnoughSpace", {
  image: Schema.String,
  path: Schema.String,
  needed: Schema.Number,
  free: Schema.Number,
}) {
  override get message() {
    return `Not enough space for image '${this.image}' in ${this.path}: it needs up to ` +
      `${formatBytes(this.needed)}, and ${formatBytes(this.free)} are free`
  }
}

/** A pulled file that is not an image the store takes (see src/domain/image_format.ts). */
export class ImageFormatRefused
  extends Schema.TaggedError<ImageFormatRefused>()("ImageFormatRefused", {
    image: Schema.String,
    source: Schema.String,
    reason: Schema.String,
  }) {
  override get message() {
    return `The image from ${this.source} is refused: ${this.reason}`
  }
}

/** qemu-img (or its in-memory stand-in) failed. */
export class DiskImageError extends Schema.TaggedError<DiskImageError>()("DiskImageError", {
  operation: Schema.String,
  path: Schema.String,
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect),
}) {
  override get message() {
    return `Cannot ${this.operation} ${this.path}: ${this.reason}`
  }
}

/**
 * The store's own files or directory cannot be read or written. Like the other I/O errors
 * (DiskImageError, CacheIoError) it reads as an operation on a path, for a reason.
 */
export class StoreIoError extends Schema.TaggedError<StoreIoError>()("StoreIoError", {
  operation: Schema.Literal(
    "open",
    "read",
    "look up",
    "lock",
    "clean",
    "write",
    "publish",
    "list",
    "remove",
  ),
  image: Schema.optional(Schema.String),
  /** The store, or the file the operation was on. */
  path: Schema.String,
  cause: Schema.Defect,
}) {
  override get message() {
    const image = `image '${this.image ?? ""}'`
    const what = {
      "open": `open the image store at ${this.path}`,
      "read": `read ${this.path}`,
      "look up": `look up ${image} in ${this.path}`,
      "lock": `lock ${image}`,
      "clean": `clean ${this.path}`,
      "write": `write ${image} to ${this.path}`,
      "publish": `publish ${image} at ${this.path}`,
      "list": `list ${this.path}`,
      "remove": `remove ${image}`,
    }[this.operation]
    return `Cannot ${what}: ${this.reason}`
  }

  /** What went wrong, in the OS's or the library's words. */
  get reason(): string {
    return reasonOf(this.cause)
  }
}

/** Every way the image store can fail on its own (a pull names registry errors beside these). */
export const StoreError = Schema.Union(
  InvalidImageName,
  ImageNotFound,
  ImageNotInStore,
  SourceFileMissing,
  SourceUnavailable,
  VagrantMetadataUnavailable,
  VagrantVersionNotFound,
  TransferIncomplete,
  ChecksumMismatch,
  DecompressionFailed,
  DecompressorMissing,
  BoxArchiveInvalid,
  ImageRefersToFile,
  ImageFormatRefused,
  ImageTooLarge,
  NotEnoughSpace,
  StoreIoError,
)
export type StoreError = typeof StoreError.Type
