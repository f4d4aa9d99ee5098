/**
 * ContainerImages: container images as ADD sources. `resolve` reads what an image is (the
 * manifest for a platform, its config, its layers) without reading a layer; `openLayer` streams
 * one layer as the uncompressed tar it stands for, verified against its digest as it goes.
 * Where the bytes come from (a registry, an OCI layout, an archive in the build context) is the
 * implementation's business.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import type { ContainerImageConfig } from "../domain/container_image.ts"
import type { ContainerSource } from "../domain/container_source.ts"
import type { ContainerImageError } from "../domain/errors/container.ts"
import type { Platform } from "../domain/platform.ts"

export type { ContainerImageConfig }

/** One layer, as the manifest lists it. */
export interface ContainerLayer {
  /**
   * The digest its bytes are checked against: the blob's, as stored. A `docker-archive:` layer
   * has none of its own, so there it is its diff id, checked on the uncompressed bytes.
   */
  readonly digest: string
  readonly size: number
  readonly mediaType: string
}

export interface ResolvedContainerImage {
  /** The source as written, normalised (formatContainerSource). */
  readonly source: string
  /** Where it was read from, to read its layers again. */
  readonly origin: ContainerSource
  /** The build directory the source's paths are relative to. */
  readonly contextDir: string
  /**
   * The digest of the image manifest chosen for the platform: the step's cache key, so a moved
   * tag invalidates. For a `docker-archive:` (no manifest of its own), that of its config.
   */
  readonly manifestDigest: string
  readonly platform: Platform
  readonly config: ContainerImageConfig
  readonly configDigest: string
  /** The uncompressed layers' digests, as the config lists them (`rootfs.diff_ids`). */
  readonly diffIds: ReadonlyArray<string>
  /** Lowest first. */
  readonly layers: ReadonlyArray<ContainerLayer>
}

export interface ContainerImagesShape {
  /**
   * The image `source` names, for `platform`: an index's entry for it (a missing one is an
   * error listing those present), whose config must name the same platform.
   */
  readonly resolve: (
    source: ContainerSource,
    platform: Platform,
    contextDir: string,
  ) => Effect.Effect<ResolvedContainerImage, ContainerImageError>
  /**
   * The layer's uncompressed tar bytes, streamed. Its digest is checked as it streams: a
   * mismatch fails the stream before its last chunk, so no consumer sees a complete layer.
   */
  readonly openLayer: (
    image: ResolvedContainerImage,
    layer: ContainerLayer,
  ) => Stream.Stream<Uint8Array, ContainerImageError>
}

export class ContainerImages
  extends Context.Tag("transient/ContainerImages")<ContainerImages, ContainerImagesShape>() {}
