/**
 * Where to fetch an image the store lacks, with the words to show the user about it.
 */
import * as Either from "effect/Either"
import { type FetchableSource, fetchableSource } from "../../domain/image_source.ts"
import type { ImageSpec, VagrantBox } from "../../domain/image_spec.ts"
import { formatOciReference } from "../../domain/oci_reference.ts"
import type { ImageNotFound } from "../../domain/errors/store.ts"

export type FetchSource =
  & FetchableSource
  & {
    /** The source in messages: a path, a URL, `Vagrant box owner/box:version`. */
    readonly describe: string
    /** The progress line's label. */
    readonly label: string
  }

const vagrantSource = (box: VagrantBox): FetchSource => ({
  _tag: "Vagrant",
  box,
  describe: `Vagrant box ${box.box}:${box.version}`,
  label: `Downloading ${box.box}:${box.version}`,
})

/** The source of `spec`: the one it names, else the Vagrant box its name spells. */
export const fetchSourceOf = (spec: ImageSpec): Either.Either<FetchSource, ImageNotFound> =>
  Either.map(fetchableSource(spec), (source): FetchSource => {
    switch (source._tag) {
      case "File":
        return { ...source, describe: source.path, label: `Copying ${spec.name}` }
      case "Http":
        return { ...source, describe: source.url, label: `Downloading ${spec.name}` }
      case "Vagrant":
        return vagrantSource(source.box)
      case "Oci": {
        const reference = formatOciReference(source.reference)
        return { ...source, describe: reference, label: `Downloading ${reference}` }
      }
    }
  })
