/**
 * The build context's side of a build: every COPY/ADD source resolved and digested before
 * anything is created or booted, so a missing or escaping source fails first. A container
 * image ADD names is resolved to the manifest of the build's platform, whose digest is the
 * source's digest: an unchanged tag costs one manifest request, a moved one misses the cache.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { isContainerSource, parseContainerSource } from "../../domain/container_source.ts"
import { ContainerSourceFailed, ContextSourceError } from "../../domain/errors/build.ts"
import type { BuildPlan } from "../../domain/plan.ts"
import { DEFAULT_PLATFORM, formatPlatform, type Platform } from "../../domain/platform.ts"
import type { ContainerOrigin } from "../../domain/store_record.ts"
import { BuildContext, type ContextEntry } from "../../services/build_context.ts"
import { ContainerImages, type ResolvedContainerImage } from "../../services/container_images.ts"

export interface ResolvedSources {
  /** A source the plan names, as the context resolved it. */
  readonly entry: (source: string) => ContextEntry
  /** A container image ADD names, as resolved for the build's platform. */
  readonly image: (source: string) => ResolvedContainerImage
  /** Each source's content digest, for the step cache's keys. */
  readonly digests: ReadonlyMap<string, string>
  /** The container images ADD unpacks, as the image's record keeps them. */
  readonly origins: ReadonlyArray<ContainerOrigin>
}

export const resolveSources = Effect.fn("build.sources")(function* (
  plan: BuildPlan,
  platform: Platform = DEFAULT_PLATFORM,
) {
  const context = yield* BuildContext
  const entries = new Map<string, ContextEntry>()
  const images = new Map<string, ResolvedContainerImage>()
  const digests = new Map<string, string>()
  for (const source of plan.sources) {
    const location = plan.sourceLocations.get(source)
    if (isContainerSource(source)) {
      const image = yield* resolveImage(source, platform, context.root, location)
      images.set(source, image)
      digests.set(source, image.manifestDigest)
      continue
    }
    const located = <A>(effect: Effect.Effect<A, ContextSourceError>) =>
      effect.pipe(
        Effect.mapError((error) =>
          location === undefined ? error : new ContextSourceError({ ...error, location })
        ),
      )
    const resolved = yield* located(context.resolve(source))
    entries.set(source, resolved)
    digests.set(source, yield* located(context.digest(resolved)))
  }
  return {
    entry: (source) => entries.get(source)!,
    image: (source) => images.get(source)!,
    digests,
    origins: [...images.entries()].map(([source, image]) => containerOrigin(source, image)),
  } satisfies ResolvedSources
})

/** What the image's record keeps of the container image `source` resolved to. */
const containerOrigin = (source: string, image: ResolvedContainerImage): ContainerOrigin => {
  // The platform is recorded on its own, as the build asked for it.
  const { os: _os, architecture: _architecture, variant: _variant, ...config } = image.config
  return { source, digest: image.manifestDigest, platform: formatPlatform(image.platform), config }
}

/** The image `source` names (checked by the Imagefile's rules), for `platform`. */
const resolveImage = Effect.fn("build.resolveImage")(function* (
  source: string,
  platform: Platform,
  root: string,
  location: string | undefined,
) {
  const parsed = parseContainerSource(source)
  if (Either.isLeft(parsed)) {
    return yield* new ContextSourceError({
      source,
      reason: "unreadable",
      detail: parsed.left,
      ...(location === undefined ? {} : { location }),
    })
  }
  const images = yield* ContainerImages
  return yield* images.resolve(parsed.right, platform, root).pipe(
    Effect.mapError((error) =>
      new ContainerSourceFailed({
        source,
        reason: error.message,
        kind: error._tag,
        ...(location === undefined ? {} : { location }),
      })
    ),
  )
})
