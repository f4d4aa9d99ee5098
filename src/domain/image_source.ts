/**
 * Where an image the store lacks would come from: the source its spec names, else the Vagrant
 * box its bare name spells. Both stores decide it alike, so they miss a name with the same error.
 */
import * as Either from "effect/Either"
import { type ImageSource, type ImageSpec, parseVagrantBox } from "./image_spec.ts"
import { ImageNotFound } from "./errors/store.ts"

/** A source an image can be fetched from. */
export type FetchableSource = Exclude<ImageSource, { readonly _tag: "Named" }>

/** The source of `spec`; a bare name that spells no Vagrant box (`owner/box:version`) has none. */
export const fetchableSource = (
  spec: ImageSpec,
): Either.Either<FetchableSource, ImageNotFound> => {
  if (spec.source._tag !== "Named") return Either.right(spec.source)
  const box = parseVagrantBox(spec.name)
  return box === undefined
    ? Either.left(new ImageNotFound({ image: spec.name }))
    : Either.right({ _tag: "Vagrant", box })
}
