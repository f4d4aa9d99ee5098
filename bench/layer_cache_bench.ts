/**
 * The step cache on the host, without the VM: keeping a chain of 40 step layers, as a build of 40
 * RUN steps does once it has published its image, and finding them all again (hits), as the next
 * build does. The layers are qcow2 overlays made by qemu-img, each written to and naming the one
 * under it by the absolute path a build's workspace gives it. Each keep starts from a fresh copy
 * of the chain (its copy untimed).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { LayerCacheDirectory } from "../src/layers/cache/layer_cache_directory.ts"
import { DiskImagesQemu } from "../src/layers/qemu/disk_images_qemu.ts"
import { type FinishedLayer, LayerCache } from "../src/services/layer_cache.ts"
import { warningsReporter } from "../tests/support/warnings_reporter.ts"
import { tool } from "./support.ts"

const LAYERS = 40

const hex = (i: number, salt: string) => (salt + String(i)).padStart(64, "0").replaceAll("k", "a")

/** A chain of `LAYERS` overlays in `dir`, each naming the previous by its absolute path. */
const makeChain = async (dir: string): Promise<Array<FinishedLayer>> => {
  const layers: Array<FinishedLayer> = []
  for (let i = 0; i < LAYERS; i++) {
    const path = `${dir}/disk-${i}.qcow2`
    const below = layers[i - 1]?.path
    await tool([
      "qemu-img",
      "create",
      "-q",
      "-f",
      "qcow2",
      ...(below === undefined ? [] : ["-b", below, "-F", "qcow2"]),
      path,
      "256M",
    ])
    await tool(["qemu-io", "-c", `write -P ${i % 256} ${i * 64}k 192k`, path])
    layers.push({ key: hex(i, "k"), text: `RUN step ${i}`, path })
  }
  return layers
}

const root = await Deno.makeTempDir({ prefix: "transient-layer-cache-bench-" })
// A workspace's name, as long as a build's (work/PID.UUID): the names the keep replaces.
const template = `${root}/template/1234567.${crypto.randomUUID()}`
await Deno.mkdir(template, { recursive: true })
const chain = await makeChain(template)

const cacheLayer = (directory: string) =>
  LayerCacheDirectory(directory).pipe(
    Layer.provide(Layer.mergeAll(DiskImagesQemu, warningsReporter(console.error))),
    Layer.provide(NodeContext.layer),
  )

/** A fresh copy of the chain at `dir`; its layers still name the template's (keeping renames). */
const copyChain = async (dir: string): Promise<Array<FinishedLayer>> => {
  await tool(["cp", "-a", template, dir])
  return chain.map((layer) => ({ ...layer, path: layer.path.replace(template, dir) }))
}

let round = 0
Deno.bench({
  name: `keep ${LAYERS} step layers`,
  n: 10,
  warmup: 1,
  async fn(b) {
    const cache = `${root}/cache-${round}`
    const finished = await copyChain(`${root}/copy-${round++}`)
    const keep = Effect.flatMap(
      LayerCache,
      (layers) => layers.keep(undefined, finished, { replace: false }),
    )
    const program = Effect.provide(keep, cacheLayer(cache))
    b.start()
    const kept = await Effect.runPromise(program)
    b.end()
    if (kept.length !== LAYERS) throw new Error(`${kept.length} layers kept of ${LAYERS}`)
  },
})

const hitsCache = `${root}/cache-hits`
const toHit = await copyChain(`${root}/copy-hits`)
await Effect.runPromise(
  Effect.provide(
    Effect.flatMap(LayerCache, (layers) => layers.keep(undefined, toHit, { replace: false })),
    cacheLayer(hitsCache),
  ),
)

Deno.bench({
  name: `hits of ${LAYERS} step layers (each pinned, its header probed)`,
  n: 20,
  warmup: 2,
  async fn() {
    const hits = Effect.flatMap(
      LayerCache,
      (layers) => Effect.scoped(layers.hits(chain.map((layer) => layer.key), undefined)),
    )
    const found = await Effect.runPromise(Effect.provide(hits, cacheLayer(hitsCache)))
    if (found.length !== LAYERS) throw new Error(`${found.length} hits of ${LAYERS}`)
  },
})

globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }))
