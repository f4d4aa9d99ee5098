/**
 * ContainerImages in memory: images given as data (a platform, what the config says, the layer
 * tars) in a MemoryContainerImages value that tests fill, by source as written. Digests are
 * computed as a registry's would be, from a manifest and config made of that data, and layers
 * are served uncompressed, checked as the real layer checks them: a layer marked corrupt fails
 * its stream before its last chunk, with the same error.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { bytesDigest } from "../../domain/blob_content.ts"
import type { ContainerImageConfig } from "../../domain/container_image.ts"
import { formatContainerSource } from "../../domain/container_source.ts"
import {
  ContainerBlobCorrupt,
  type ContainerImageError,
  ContainerImageNotFound,
  ContainerPlatformMismatch,
  ContainerPlatformMissing,
} from "../../domain/errors/container.ts"
import { jsonBytes, MediaType } from "../../domain/oci_manifest.ts"
import {
  DEFAULT_PLATFORM,
  formatPlatform,
  normalizePlatform,
  type Platform,
  selectPlatformEntry,
} from "../../domain/platform.ts"
import {
  ContainerImages,
  type ContainerImagesShape,
  type ResolvedContainerImage,
} from "../../services/container_images.ts"
import { verifiedAtEnd } from "../container/layer_bytes.ts"

/** One image, as a test gives it. */
export interface MemoryContainerImage {
  /** linux/amd64 unless said. */
  readonly platform?: Platform
  /** What its config says besides its platform. */
  readonly config?: Omit<ContainerImageConfig, "os" | "architecture" | "variant">
  /** The layers' tar bytes, lowest first. */
  readonly layers: ReadonlyArray<Uint8Array>
}

/** The images, shared with the tests that fill them and look at what was read. */
export class MemoryContainerImages {
  /** By source as written, normalised; several images are an index's entries. */
  readonly images = new Map<string, ReadonlyArray<MemoryContainerImage>>()
  /** Layer digests whose bytes are served with one byte changed. */
  readonly corrupt = new Set<string>()
  /** Every operation, in order: `resolve SOURCE`, `open sha256:…`. */
  readonly log: Array<string> = []
}

/** The chunks a layer is served in, so that a stream has several. */
const CHUNK = 64 * 1024

const resolvedImage = (
  source: string,
  origin: ResolvedContainerImage["origin"],
  contextDir: string,
  image: MemoryContainerImage,
): ResolvedContainerImage => {
  const platform = image.platform ?? DEFAULT_PLATFORM
  const diffIds = image.layers.map(bytesDigest)
  const config: ContainerImageConfig = {
    ...image.config,
    os: platform.os,
    architecture: platform.architecture,
    ...(platform.variant === undefined ? {} : { variant: platform.variant }),
  }
  const configBytes = jsonBytes({ ...config, rootfs: { type: "layers", diff_ids: diffIds } })
  const layers = image.layers.map((bytes, i) => ({
    digest: diffIds[i] ?? "",
    size: bytes.length,
    mediaType: MediaType.ociLayerTar,
  }))
  const manifest = jsonBytes({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: {
      mediaType: MediaType.ociConfig,
      digest: bytesDigest(configBytes),
      size: configBytes.length,
    },
    layers,
  })
  return {
    source,
    origin,
    contextDir,
    manifestDigest: bytesDigest(manifest),
    platform,
    config,
    configDigest: bytesDigest(configBytes),
    diffIds,
    layers,
  }
}

const make = (state: MemoryContainerImages): ContainerImagesShape => ({
  resolve: (origin, platform, contextDir) =>
    Effect.gen(function* () {
      const source = formatContainerSource(origin)
      state.log.push(`resolve ${source}`)
      const images = state.images.get(source)
      if (images === undefined || images.length === 0) {
        return yield* new ContainerImageNotFound({ source, missing: "image there" })
      }
      const [only] = images
      const image = only !== undefined && images.length === 1 ? only : yield* Either.mapLeft(
        selectPlatformEntry(
          images.map((entry) => ({ entry, platform: entry.platform ?? DEFAULT_PLATFORM })),
          platform,
        ),
        (reason) =>
          new ContainerPlatformMissing({ source, platform: formatPlatform(platform), reason }),
      ).pipe(Either.map(({ entry }) => entry))
      const resolved = resolvedImage(source, origin, contextDir, image)
      const configured = formatPlatform(normalizePlatform(resolved.platform))
      const wanted = formatPlatform(normalizePlatform(platform))
      if (configured !== wanted) {
        return yield* new ContainerPlatformMismatch({ source, platform: wanted, configured })
      }
      return resolved
    }),
  openLayer: (image, layer) =>
    Stream.suspend((): Stream.Stream<Uint8Array, ContainerImageError> => {
      state.log.push(`open ${layer.digest}`)
      const bytes = (state.images.get(image.source) ?? [])
        .flatMap((entry) => entry.layers)
        .find((candidate) => bytesDigest(candidate) === layer.digest)
      if (bytes === undefined) {
        return Stream.fail(
          new ContainerImageNotFound({ source: image.source, missing: `blob ${layer.digest}` }),
        )
      }
      const served = bytes.slice()
      if (state.corrupt.has(layer.digest) && served.length > 0) {
        const middle = Math.floor(served.length / 2)
        served[middle] = (served[middle] ?? 0) ^ 0xff
      }
      const chunks: Array<Uint8Array> = []
      for (let offset = 0; offset < served.length; offset += CHUNK) {
        chunks.push(served.subarray(offset, offset + CHUNK))
      }
      return Stream.fromIterable(chunks).pipe(
        verifiedAtEnd(
          layer.digest,
          (actual) =>
            new ContainerBlobCorrupt({ source: image.source, digest: layer.digest, actual }),
        ),
      )
    }),
})

export const ContainerImagesMemory = (state: MemoryContainerImages): Layer.Layer<ContainerImages> =>
  Layer.succeed(ContainerImages, make(state))
