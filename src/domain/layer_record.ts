/**
 * What the step cache records of each layer it keeps, and the rules both caches (the directory
 * and the memory one) follow with those records: which layers a build may use, and when keeping
 * stops.
 *
 * A layer is a qcow2 delta, correct only over the exact bytes it was written on. Keys name the
 * inputs of steps, so two machines (or a `--no-cache` rebuild) give one key to parents whose
 * bytes differ; a record therefore also holds the digest of its layer's file and of its
 * parent's, and a chain is used only where each parent digest is the digest of the layer under
 * it. A layer's file is named by its digest, and its backing name is its parent's file name:
 * the header itself says which bytes it was made on.
 */
import * as Schema from "effect/Schema"
import { FileStamp } from "./store_record.ts"

/** `sha256:HEX`, as OCI digests are written. */
const Digest = Schema.String.pipe(Schema.pattern(/^sha256:[0-9a-f]{64}$/))

/** A layer's record: on top of `parent` (whose write was `parentId`), or a first layer. */
export const LayerRecord = Schema.Struct({
  key: Schema.String,
  parent: Schema.optionalWith(Schema.String, { exact: true }),
  /** This write of the layer: a child records it, so a rewritten parent orphans the child. */
  id: Schema.String,
  parentId: Schema.optionalWith(Schema.String, { exact: true }),
  /** The sha256 of the layer's file, as kept. */
  digest: Digest,
  /**
   * What the layer was written on: the parent's digest, or for a first layer the base image's
   * identity (as the store records it); absent for a first layer of `FROM scratch`.
   */
  parentDigest: Schema.optionalWith(Schema.String, { exact: true }),
  /** The file's stamp when its digest was last computed: another stamp means hashing again. */
  stamp: Schema.optionalWith(FileStamp, { exact: true }),
  text: Schema.String,
  createdMs: Schema.Number,
})
export type LayerRecord = typeof LayerRecord.Type

/** A record as its file holds it. */
export const LayerRecordJson = Schema.parseJson(LayerRecord)

const LAYER_KEY = /^[0-9a-f]{64}$/

/** Whether `key` can name a layer (it becomes a file name: hex only). */
export const isLayerKey = (key: string): boolean => LAYER_KEY.test(key)

/** The name of a layer's file in the cache, from its digest: another write, another file. */
export const layerFileName = (digest: string): string => `${digest.slice("sha256:".length)}.qcow2`

const IDENTITY = /^[a-z0-9]+:[0-9a-f-]{8,128}$/

/**
 * The name in the cache that stands for the base image of identity `identity` (a link to its
 * file in the store): a first layer's backing name, the same on every machine. Undefined when
 * the identity cannot be a file name (then nothing on that base is cached).
 */
export const baseLinkName = (identity: string): string | undefined =>
  IDENTITY.test(identity) ? `base-${identity.replace(":", "-")}.qcow2` : undefined

/** What a layer sits on: the layer below it, or for a first layer the base's identity. */
export interface Below {
  readonly id: string
  readonly digest: string
}

/** What a layer's record must say it was written on: `below`'s digest, or `base` for a first. */
export const expectedParentDigest = (
  below: Below | undefined,
  base: string | undefined,
): string | undefined => below === undefined ? base : below.digest

/**
 * The backing name a layer's header must hold: its parent's file, the base's link, or none.
 * Undefined when no layer can be on `base` (an identity that names no file).
 */
export const expectedBacking = (
  below: Below | undefined,
  base: string | undefined,
): { readonly backing: string | undefined } | undefined => {
  if (below !== undefined) return { backing: layerFileName(below.digest) }
  if (base === undefined) return { backing: undefined }
  const link = baseLinkName(base)
  return link === undefined ? undefined : { backing: link }
}

/** The record of a new write (`id`) of `layer`, whose file's digest is `digest`. */
export const newRecord = (
  layer: { readonly key: string; readonly text: string },
  below: ({ readonly key: string } & Below) | undefined,
  base: string | undefined,
  written: {
    readonly id: string
    readonly digest: string
    readonly stamp?: FileStamp
    readonly createdMs: number
  },
): LayerRecord => {
  const parentDigest = expectedParentDigest(below, base)
  return {
    key: layer.key,
    ...(below === undefined ? {} : { parent: below.key, parentId: below.id }),
    id: written.id,
    digest: written.digest,
    ...(parentDigest === undefined ? {} : { parentDigest }),
    ...(written.stamp === undefined ? {} : { stamp: written.stamp }),
    text: layer.text,
    createdMs: written.createdMs,
  }
}

/**
 * Whether `record`, found under `key`, continues a chain on `below` (or is a first layer on
 * `base`): the same key, the same write of its parent, and the bytes it was made on.
 */
export const continuesChain = (
  record: LayerRecord,
  key: string,
  below: Below | undefined,
  base: string | undefined,
): boolean =>
  record.key === key && record.parentId === below?.id &&
  record.parentDigest === expectedParentDigest(below, base)

/**
 * The records of the longest leading run of `keys` a build can use: each continuing the one
 * before it, the first one on `base` (an identity). `recordOf` gives a key's checked record.
 */
export const usableChain = <R extends LayerRecord>(
  keys: ReadonlyArray<string>,
  base: string | undefined,
  recordOf: (key: string, below: R | undefined) => R | undefined,
): ReadonlyArray<R> => {
  const chain: Array<R> = []
  for (const key of keys) {
    const below = chain[chain.length - 1]
    const record = recordOf(key, below)
    if (record === undefined || !continuesChain(record, key, below, base)) break
    chain.push(record)
  }
  return chain
}

/** Whether a file stamped `stamp` must be hashed again to trust `record`'s digest for it. */
export const needsHashing = (record: LayerRecord, stamp: FileStamp | undefined): boolean =>
  stamp === undefined || record.stamp === undefined || record.stamp.size !== stamp.size ||
  record.stamp.ino !== stamp.ino || record.stamp.mtimeMs !== stamp.mtimeMs

/**
 * Whether keeping a layer stops at `existing`, the record the cache holds under its key: it does
 * when that record continues the same chain, unless the build replaces layers.
 */
export const alreadyKept = (
  existing: LayerRecord | undefined,
  below: Below | undefined,
  base: string | undefined,
  replace: boolean,
): boolean =>
  !replace && existing !== undefined && existing.parentId === below?.id &&
  existing.parentDigest === expectedParentDigest(below, base)

/** What the cache hands a build for `record`, its file at `path`. */
export const cachedLayer = (record: LayerRecord, path: string) => ({
  key: record.key,
  path,
  id: record.id,
  digest: record.digest,
  ...(record.parentDigest === undefined ? {} : { parentDigest: record.parentDigest }),
  ...(record.parent === undefined ? {} : { parent: record.parent }),
  text: record.text,
})
