/**
 * guest/dist/manifest.json: what the helper VM's artifacts were made from and the sums of what
 * was made. `deno task guest` (guest/assemble.ts) encodes it with this Schema and the QEMU layer
 * decodes it with the same one, so writer and reader cannot drift apart.
 */
import * as Schema from "effect/Schema"

/** Where the recipe ships guest/scripts/*.sh in the helper VM, for argv built on the host. */
export const GUEST_SCRIPT_DIR = "/usr/lib/transient"

/** A sha256 as 64 lowercase hex digits. */
export const Sha256 = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/))

/** How the initramfs is compressed. */
export const Compression = Schema.Literal("none", "gzip", "zstd")
export type Compression = typeof Compression.Type

/** The sum and size of one file of guest/dist. */
export const ArtifactSum = Schema.Struct({ sha256: Sha256, size: Schema.NonNegativeInt })
export type ArtifactSum = typeof ArtifactSum.Type

/** A script of guest/scripts, shipped at `${GUEST_SCRIPT_DIR}/${name}`. */
export const GuestScript = Schema.Struct({
  name: Schema.String.pipe(Schema.pattern(/^[^/]+$/)),
  sha256: Sha256,
})
export type GuestScript = typeof GuestScript.Type

export const GuestManifest = Schema.Struct({
  /** The sha256 of everything the artifacts are made from: pins, options, recipe, agent, Deno. */
  inputs: Sha256,
  /** The sha256 of guest/pins.json. */
  pins: Sha256,
  /** The kernel release, e.g. `6.1.0-56-amd64`. */
  kernel: Schema.String,
  /** The first line of the guest Deno's `--version`. */
  deno: Schema.String,
  /** The agent's modules, as paths relative to the repository (the entry among them). */
  agent: Schema.Array(Schema.String),
  /** The guest scripts, sorted by name. */
  scripts: Schema.Array(GuestScript),
  /** Debian package name to the pinned version. */
  packages: Schema.Record({ key: Schema.String, value: Schema.String }),
  artifacts: Schema.Struct({
    vmlinux: ArtifactSum,
    "initramfs.img": ArtifactSum,
    /** Absent when Deno and the agent are in the initramfs. */
    "runtime.img": Schema.optional(ArtifactSum),
  }),
  options: Schema.Struct({ denoInInitramfs: Schema.Boolean, compression: Compression }),
})
export type GuestManifest = typeof GuestManifest.Type

/** The manifest as the text of manifest.json (two-space indented, as the recipe writes it). */
export const GuestManifestJson = Schema.parseJson(GuestManifest, { space: 2 })

/**
 * The digest that stands for a set of guest artifacts in cache keys. It is the manifest's
 * `inputs`, not a hash of the manifest's text: the recipe makes the same bytes from the same
 * inputs, and the digest does not move when the manifest's layout or field order does.
 */
export const guestInputsDigest = (manifest: Pick<GuestManifest, "inputs">): string =>
  manifest.inputs
