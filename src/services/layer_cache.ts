/**
 * LayerCache: the step cache. Each cached layer is a qcow2 overlay holding what its steps wrote
 * (src/domain/step_keys.ts says which steps and under which key), backed by its parent's layer;
 * a build that finds the first layers of its plan boots on them instead of running their steps.
 *
 * Layers are read-only once kept and are never replaced while a valid one holds their key, so
 * two builds that share steps can use and keep layers at the same time. Each write of a layer
 * has its own id and digest, which its children record: a child whose parent was written again
 * (other bytes under the same key) no longer counts, and any layer may be deleted at any time.
 * A layer a build uses is checked first (its bytes against its record, its header against its
 * parent) and pinned until the build ends: a prune or a replacing build leaves it alone.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { CacheIoError } from "../domain/errors/cache.ts"

/** A layer the cache holds. */
export interface CachedLayer {
  readonly key: string
  /** Its qcow2 (absolute); its backing file is its parent's. */
  readonly path: string
  /** This write of the layer. */
  readonly id: string
  /** The sha256 of its file (`sha256:HEX`). */
  readonly digest: string
  /** What it was written on: its parent's digest, or a first layer's base identity. */
  readonly parentDigest?: string
  /** The parent's key; absent for a first layer. */
  readonly parent?: string
  /** The steps' text, as `cache ls` shows it. */
  readonly text: string
  /** The registry it was just downloaded from (`--cache-from`), when it was. */
  readonly source?: string
}

/** A layer a build finished, to be kept: `path` is the build's own file, no longer written. */
export interface FinishedLayer {
  readonly key: string
  readonly text: string
  readonly path: string
  /**
   * A file from elsewhere (a registry), kept as it is: its digest, and its header already
   * names the parent it was made on. Absent for a layer built here, whose backing name the cache
   * sets.
   */
  readonly digest?: string
}

/** The image a first layer is an overlay of (`FROM <image>`): its file and its identity. */
export interface BaseImage {
  readonly path: string
  /** What stands for its content (ImageStore.identity). */
  readonly identity: string
}

export interface KeepOptions {
  /** Replace layers the cache holds under the same keys (`--no-cache`: this build's win). */
  readonly replace: boolean
  /** For first layers: the store image they are overlays of. */
  readonly base?: BaseImage
}

/** One layer as `cache ls` shows it. */
export interface LayerEntry {
  readonly key: string
  /** The parent's key; absent for a first layer. */
  readonly parent?: string
  readonly text: string
  /** Bytes the layer's file takes on disk. */
  readonly sizeBytes: number
  readonly createdMs: number
  readonly lastUsedMs: number
}

export interface PruneOptions {
  /** Remove every layer (but those a running build uses). */
  readonly all: boolean
  /** Otherwise remove the least recently used layers until the rest take at most this. */
  readonly keepBytes?: number
}

export interface PruneResult {
  readonly removed: number
  readonly freedBytes: number
}

export interface LayerCacheShape {
  /** The cache's directory (for messages). */
  readonly root: string
  /**
   * The longest leading run of `keys` that the cache serves, each layer checked, marked as used
   * and pinned until the scope closes. `base` is the image a first layer must be an overlay of
   * (`FROM <image>`). A layer that fails its checks is a miss with a warning, and is removed.
   */
  readonly hits: (
    keys: ReadonlyArray<string>,
    base?: BaseImage,
  ) => Effect.Effect<ReadonlyArray<CachedLayer>, never, Scope.Scope>
  /**
   * A private directory for a build's layer files, on the cache's file system; it is removed,
   * with whatever was not kept, when the scope closes.
   */
  readonly workspace: Effect.Effect<string, CacheIoError, Scope.Scope>
  /**
   * Keep `layers` (in order, each the parent of the next) on top of `parent`, or as first
   * layers. Unless `replace`, stops before the first layer whose key the cache already holds on
   * the same parent: the later ones were built on this build's own copy of it. Returns the
   * layers kept.
   */
  readonly keep: (
    parent: CachedLayer | undefined,
    layers: ReadonlyArray<FinishedLayer>,
    options: KeepOptions,
  ) => Effect.Effect<ReadonlyArray<CachedLayer>, CacheIoError>
  readonly list: Effect.Effect<ReadonlyArray<LayerEntry>, CacheIoError>
  readonly prune: (options: PruneOptions) => Effect.Effect<PruneResult, CacheIoError>
}

export class LayerCache extends Context.Tag("transient/LayerCache")<
  LayerCache,
  LayerCacheShape
>() {}
