/**
 * What the image store records about each image (`.identity/NAME.json`): the identity of its
 * content for step-cache keys, where a build came from, and notes derived from the content. A
 * record holds the stamp of the file it was made for; once the file is replaced, it no longer
 * counts. Both stores keep these records as text and read them through `StoreRecordJson`.
 */
import * as Schema from "effect/Schema"
import { RecordedImageConfig } from "./container_image.ts"
import { encodeImageName } from "./image_spec.ts"

/** What the file an image is in is now: its size, inode and modification time. */
export const FileStamp = Schema.Struct({
  size: Schema.Number,
  ino: Schema.Number,
  mtimeMs: Schema.Number,
})
export type FileStamp = typeof FileStamp.Type

/**
 * A container image a build's ADD unpacked: where it came from, and its config, recorded (a VM
 * image does not apply a container's ENV or WORKDIR, but says what they were).
 */
export const ContainerOrigin = Schema.Struct({
  /** As the Imagefile wrote it. */
  source: Schema.String,
  /** The digest of the image manifest unpacked (for docker-archive:, of its config). */
  digest: Schema.String,
  /** `OS/ARCH[/VARIANT]`. */
  platform: Schema.String,
  config: RecordedImageConfig,
})
export type ContainerOrigin = typeof ContainerOrigin.Type

/** What a build records about the image it published (registry annotations show it). */
export interface BuildProvenance {
  /** `sha256:HEX` of the Imagefile's text. */
  readonly imagefileDigest: string
  /** When it was published, ISO 8601. */
  readonly builtAt: string
  /** The container images ADD unpacked into it, in the order of the Imagefile. */
  readonly containerImages?: ReadonlyArray<ContainerOrigin>
}

export const StoreRecord = Schema.Struct({
  ...FileStamp.fields,
  /** What stands for the content in step-cache keys (`sha256:HEX` of the file, or a build's). */
  identity: Schema.optionalWith(Schema.String, { exact: true }),
  /** A build's provenance: the digest of its Imagefile's text and when it was published. */
  imagefileDigest: Schema.optionalWith(Schema.String, { exact: true }),
  builtAt: Schema.optionalWith(Schema.String, { exact: true }),
  containerImages: Schema.optionalWith(Schema.Array(ContainerOrigin), { exact: true }),
  notes: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), {
    exact: true,
  }),
})
export type StoreRecord = typeof StoreRecord.Type

/** A record as its file holds it. */
export const StoreRecordJson = Schema.parseJson(StoreRecord)

/** The store's directory of records, beside the images. */
export const STORE_RECORDS = ".identity"

/** The file name of the record of the image `name`, in STORE_RECORDS. */
export const storeRecordFileName = (name: string): string => `${encodeImageName(name)}.json`

/** The provenance a record holds, when it holds a build's. */
export const recordedProvenance = (record: Partial<StoreRecord>): BuildProvenance | undefined => {
  const { imagefileDigest, builtAt, containerImages } = record
  if (imagefileDigest === undefined || builtAt === undefined) return undefined
  return { imagefileDigest, builtAt, ...(containerImages === undefined ? {} : { containerImages }) }
}

/** What still holds of `record` for the file stamped `stamp`: nothing once the file changed. */
export const currentRecord = (
  record: StoreRecord | undefined,
  stamp: FileStamp,
): Partial<StoreRecord> =>
  record !== undefined && record.size === stamp.size && record.ino === stamp.ino &&
    record.mtimeMs === stamp.mtimeMs
    ? record
    : {}
