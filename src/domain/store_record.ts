/**
 * What the image store records about each image (`.identity/NAME.json`): the identity of its
 * content for step-cache keys, where a build came from, and notes derived from the content. A
 * record holds the stamp of the file it was made for; once the file is replaced, it no longer
 * counts. Both stores keep these records as text and read them through `StoreRecordJson`.
 */
import * as Schema from "effect/Schema"
import { encodeImageName } from "./image_spec.ts"

/** What the file an image is in is now: its size, inode and modification time. */
export const FileStamp = Schema.Struct({
  size: Schema.Number,
  ino: Schema.Number,
  mtimeMs: Schema.Number,
})
export type FileStamp = typeof FileStamp.Type

export const StoreRecord = Schema.Struct({
  ...FileStamp.fields,
  /** What stands for the content in step-cache keys (`sha256:HEX` of the file, or a build's). */
  identity: Schema.optionalWith(Schema.String, { exact: true }),
  /** A build's provenance: the digest of its Imagefile's text and when it was published. */
  imagefileDigest: Schema.optionalWith(Schema.String, { exact: true }),
  builtAt: Schema.optionalWith(Schema.String, { exact: true }),
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

/** What still holds of `record` for the file stamped `stamp`: nothing once the file changed. */
export const currentRecord = (
  record: StoreRecord | undefined,
  stamp: FileStamp,
): Partial<StoreRecord> =>
  record !== undefined && record.size === stamp.size && record.ino === stamp.ino &&
    record.mtimeMs === stamp.mtimeMs
    ? record
    : {}
