/**
 * The output directory (guest/dist by default): whether it already holds the artifacts of some
 * inputs, the sums of what was made, and the manifest, encoded with the one GuestManifest Schema.
 */
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import {
  type ArtifactSum,
  type GuestManifest,
  GuestManifestJson,
} from "../../src/domain/guest/manifest.ts"
import { exists } from "./files.ts"
import { sha256Hex } from "./process.ts"

export const ARTIFACT_NAMES = ["vmlinux", "initramfs.img", "runtime.img"] as const

/** Whether `out` holds artifacts made from exactly these inputs, unaltered since. */
export const upToDate = async (out: string, inputs: string): Promise<boolean> => {
  const text = await Deno.readTextFile(`${out}/manifest.json`).catch(() => undefined)
  if (text === undefined) return false
  const manifest = Schema.decodeUnknownOption(GuestManifestJson)(text)
  if (Option.isNone(manifest) || manifest.value.inputs !== inputs) return false
  for (const [name, artifact] of Object.entries(manifest.value.artifacts)) {
    if (artifact === undefined) continue
    const bytes = await Deno.readFile(`${out}/${name}`).catch(() => undefined)
    if (bytes === undefined || (await sha256Hex(bytes)) !== artifact.sha256) return false
  }
  return true
}

/** Remove the artifacts of an earlier build, so none of them outlives a failed one. */
export const removeArtifacts = async (out: string): Promise<void> => {
  for (const name of ARTIFACT_NAMES) await Deno.remove(`${out}/${name}`).catch(() => {})
}

const sumOf = async (path: string): Promise<ArtifactSum> => {
  const bytes = await Deno.readFile(path)
  return { sha256: await sha256Hex(bytes), size: bytes.length }
}

/** The sums of the artifacts in `out`; runtime.img only if it was made. */
export const artifactSums = async (out: string): Promise<GuestManifest["artifacts"]> => {
  const vmlinux = await sumOf(`${out}/vmlinux`)
  const initramfs = await sumOf(`${out}/initramfs.img`)
  const runtime = (await exists(`${out}/runtime.img`))
    ? await sumOf(`${out}/runtime.img`)
    : undefined
  return {
    vmlinux,
    "initramfs.img": initramfs,
    ...(runtime === undefined ? {} : { "runtime.img": runtime }),
  }
}

export const writeManifest = (out: string, manifest: GuestManifest): Promise<void> =>
  Deno.writeTextFile(`${out}/manifest.json`, Schema.encodeSync(GuestManifestJson)(manifest) + "\n")
