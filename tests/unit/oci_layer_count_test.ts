/** A pulled manifest's layers are tried one by one for the disk: too many is no disk image. */
import assert from "node:assert/strict"
import * as Either from "effect/Either"
import {
  type Descriptor,
  diskLayout,
  MAX_IMAGE_LAYERS,
  MediaType,
} from "../../src/domain/oci_manifest.ts"

const layer = (n: number): Descriptor => ({
  mediaType: "application/vnd.oci.image.layer.v1.tar",
  digest: `sha256:${n.toString(16).padStart(64, "0")}`,
  size: 1024,
})

const image = (count: number) =>
  diskLayout({
    schemaVersion: 2,
    config: { mediaType: MediaType.ociConfig, digest: `sha256:${"c".repeat(64)}`, size: 2 },
    layers: Array.from({ length: count }, (_, n) => layer(n)),
  })

Deno.test("a containerDisk of up to the limit's layers is tried; one more layer is refused", () => {
  const most = image(MAX_IMAGE_LAYERS)
  assert.ok(Either.isRight(most))
  assert.equal(most.right._tag === "ContainerDisk" && most.right.layers.length, MAX_IMAGE_LAYERS)
  assert.deepEqual(
    image(10_000),
    Either.left(
      `it has 10000 layers, more than the ${MAX_IMAGE_LAYERS} a disk image may have`,
    ),
  )
})
