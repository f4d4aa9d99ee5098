/**
 * What the step cache records of each layer it keeps, and the rules both caches (the directory
 * and the memory one) follow with those records: which layers a build may use, and when keeping
 * stops.
 */
import * as Schema from "effect/Schema"

/** A layer's record: on top of `parent` (whose write was `parentId`), or a first layer on `base`. */
export const LayerRecord = Schema.Struct({
  key: Schema.String,
  parent: Schema.optionalWith(Schema.String, { exact: true }),
  /** This write of the layer: a child records it, so a rewritten parent orphans the child. */
  id: Schema.String,
  parentId: Schema.optionalWith(Schema.String, { exact: true }),
  /** A first layer's backing file outside the cache: the base image in the store. */
  base: Schema.optionalWith(Schema.String, { exact: true }),
  text: Schema.String,
  createdMs: Schema.Number,
})
export type LayerRecord = typeof LayerRecord.Type

/** A record as its file holds it. */
export const LayerRecordJson = Schema.parseJson(LayerRecord)

const LAYER_KEY = /^[0-9a-f]{64}$/

/** Whether `key` can name a layer (it becomes a file name: hex only). */
export const isLayerKey = (key: string): boolean => LAYER_KEY.test(key)

/** The record of a new write (`id`) of `layer`, on top of `below` or, as a first layer, `base`. */
export const newRecord = (
  layer: { readonly key: string; readonly text: string },
  below: { readonly key: string; readonly id: string } | undefined,
  base: string | undefined,
  id: string,
  createdMs: number,
): LayerRecord => ({
  key: layer.key,
  ...(below === undefined
    ? base === undefined ? {} : { base }
    : { parent: below.key, parentId: below.id }),
  id,
  text: layer.text,
  createdMs,
})

/**
 * The records of the longest leading run of `keys` a build can use: each the child of the write
 * before it, the first one an overlay of `base`. `recordOf` gives a key's valid record, if any.
 */
export const usableChain = <R extends LayerRecord>(
  keys: ReadonlyArray<string>,
  base: string | undefined,
  recordOf: (key: string) => R | undefined,
): ReadonlyArray<R> => {
  const chain: Array<R> = []
  for (const key of keys) {
    const record = recordOf(key)
    if (record === undefined || record.key !== key) break
    if (record.parentId !== chain[chain.length - 1]?.id) break
    if (chain.length === 0 && record.base !== base) break
    chain.push(record)
  }
  return chain
}

/**
 * Whether keeping a layer stops at `existing`, the record the cache holds under its key: it does
 * when that record is on the same write of the parent (`below`), unless the build replaces layers.
 */
export const alreadyKept = (
  existing: LayerRecord | undefined,
  below: { readonly id: string } | undefined,
  replace: boolean,
): boolean => !replace && existing !== undefined && existing.parentId === below?.id
