/**
 * An image in an OCI registry as a source: its manifest (through an index to this host's
 * platform), verified against the digest it was asked for, read into where its disk is; then
 * the blob holding the disk as the Registry's byte stream (resumed where a dropped connection
 * left it), verified by download.ts against the blob's digest.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { NotADiskImage } from "../../domain/errors/registry.ts"
import {
  chooseFromIndex,
  decodeManifestOrIndex,
  type Descriptor,
  type DiskLayout,
  diskLayout,
  isIndex,
} from "../../domain/oci_manifest.ts"
import type { OciReference } from "../../domain/oci_reference.ts"
import { ChecksumMismatch } from "../../domain/errors/store.ts"
import { Registry, type Repository } from "../../services/registry.ts"
import type { OpenedSource } from "./sources.ts"

/** The manifest (or index) at `at` (a tag or digest), checked against `digest` if given. */
const fetchManifest = (
  image: string,
  repository: Repository,
  at: string,
  digest: string | undefined,
) =>
  Effect.gen(function* () {
    const fetched = yield* repository.fetchManifest(at)
    if (digest !== undefined && fetched.digest !== digest) {
      return yield* new ChecksumMismatch({
        image,
        source: `the manifest of ${repository.describe}`,
        algorithm: "sha256",
        expected: digest.slice("sha256:".length),
        actual: fetched.digest.slice("sha256:".length),
      })
    }
    return yield* Either.mapLeft(
      decodeManifestOrIndex(fetched.bytes),
      () =>
        new NotADiskImage({
          reference: repository.describe,
          reason: "the registry's answer is not an OCI or Docker v2 manifest",
        }),
    )
  })

export interface OciDisk {
  readonly repository: Repository
  readonly layout: DiskLayout
}

/** Where the disk of `reference` is, from its manifest. */
export const resolveOciDisk = Effect.fn("ImageStore.resolveOciDisk")(function* (
  image: string,
  reference: OciReference,
) {
  const registry = yield* Registry
  const repository = yield* registry.repository(reference, "pull")
  const describe = repository.describe
  const notADisk = (reason: string) => new NotADiskImage({ reference: describe, reason })
  const top = yield* fetchManifest(
    image,
    repository,
    reference.digest ?? reference.tag ?? "latest",
    reference.digest,
  )
  let manifest = top
  if (isIndex(top)) {
    const entry = yield* Either.mapLeft(chooseFromIndex(top), notADisk)
    manifest = yield* fetchManifest(image, repository, entry.digest, entry.digest)
  }
  if (isIndex(manifest)) return yield* notADisk("it nests one index in another")
  const layout = yield* Either.mapLeft(diskLayout(manifest), notADisk)
  return { repository, layout } satisfies OciDisk
})

/** The source of one layer of `disk`, to be verified against its digest. */
export const openOciLayer = (disk: OciDisk, descriptor: Descriptor): OpenedSource => ({
  bytes: disk.repository.openBlob(descriptor),
  size: descriptor.size,
  checksum: { type: "sha256", value: descriptor.digest.slice("sha256:".length) },
  ...(disk.layout._tag === "ContainerDisk" ? { archive: "ContainerDisk" as const } : {}),
})
