/**
 * ImageStoreDirectory without the network: publishing built images (begin/commit), listing and
 * removing, looking up, and cleaning what killed processes left in `.working/`.
 */
import assert from "node:assert/strict"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { encodeImageName } from "../../src/domain/image_spec.ts"
import { DiskImagesQemu } from "../../src/layers/qemu/disk_images_qemu.ts"
import { ReporterConsole } from "../../src/layers/reporter/reporter_console.ts"
import { ImageStoreDirectory } from "../../src/layers/store/image_store_directory.ts"
import { RegistryHttp } from "../../src/layers/registry/registry_http.ts"
import { DiskImages } from "../../src/services/disk_images.ts"
import { ImageStore } from "../../src/services/image_store.ts"
import { silentConsole } from "../support/silent_console.ts"
import { runFailure, runTest } from "../support/effect.ts"
import { tool } from "../support/host_tool.ts"

const MiB = 1024 * 1024

const storeAt = (root: string) =>
  Layer.provideMerge(
    ImageStoreDirectory(root),
    Layer.mergeAll(DiskImagesQemu, ReporterConsole("plain", silentConsole), FetchHttpClient.layer),
  ).pipe(
    Layer.provide(RegistryHttp(false)),
    Layer.provide(Layer.merge(NodeContext.layer, FetchHttpClient.layer)),
  )

const withStore = <A, E>(
  root: string,
  use: (store: typeof ImageStore.Service) => Effect.Effect<A, E, DiskImages>,
) => Effect.flatMap(ImageStore, use).pipe(Effect.provide(storeAt(root)))

/** Put a qcow2 of `size` into the store directly, as the original transient would have. */
const place = async (root: string, name: string, size: number) => {
  const file = `${root}/${encodeImageName(name)}`
  await tool("qemu-img", "create", "-q", "-f", "qcow2", file, String(size))
  await Deno.chmod(file, 0o444)
}

Deno.test("list shows decoded names sorted, with sizes; remove names an unknown image", async () => {
  const root = await Deno.makeTempDir()
  await Deno.mkdir(`${root}/.working`)
  await place(root, "with-dash", 20 * 1024 * MiB)
  await place(root, "a/slash", MiB)
  await place(root, "with space", 2 * MiB)
  const images = await runTest(withStore(root, (store) => store.list))
  assert.deepEqual(images.map((image) => image.name), ["a/slash", "with space", "with-dash"])
  assert.deepEqual(images.map((image) => image.virtualSize), [MiB, 2 * MiB, 20 * 1024 * MiB])
  assert.equal(images[2]?.path, `${root}/with%2Ddash`)
  assert.ok(images.every((image) => image.format === "qcow2" && image.actualSize > 0))

  await runTest(withStore(root, (store) => store.remove("with-dash")))
  const cause = await runFailure(withStore(root, (store) => store.remove("nothing-here")))
  assert.match(String(cause), /No image named 'nothing-here'/)
  const left = await runTest(withStore(root, (store) => store.list))
  assert.deepEqual(left.map((image) => image.name), ["a/slash", "with space"])
})

Deno.test("lookup only looks: it never downloads", async () => {
  const root = await Deno.makeTempDir()
  await Deno.mkdir(root, { recursive: true })
  await place(root, "here", MiB)
  const [here, away] = await runTest(withStore(root, (store) =>
    Effect.all([
      store.lookup("here"),
      // A URL nothing listens on: a download attempt would fail the test.
      store.lookup("away,http=http://127.0.0.1:9/x.img"),
    ])))
  assert.deepEqual(here, { name: "here", present: true })
  assert.deepEqual(away, { name: "away", present: false })
  const invalid = await runFailure(withStore(root, (store) => store.lookup(",x")))
  assert.match(String(invalid), /Invalid image spec ',x'/)
})

Deno.test("a committed build is published read-only; an uncommitted one leaves nothing", async () => {
  const root = await Deno.makeTempDir()
  const build = (name: string, commit: boolean, force = false) =>
    withStore(root, (store) =>
      Effect.scoped(Effect.gen(function* () {
        const working = yield* store.begin({ _tag: "Store", name }, { force })
        assert.ok(working.path.startsWith(`${root}/.working/`))
        const disks = yield* DiskImages
        yield* disks.create({ path: working.path, sizeBytes: 3 * MiB })
        return commit ? yield* working.commit : undefined
      })))

  const image = await runTest(build("built-1", true))
  assert.equal(image?.path, `${root}/built%2D1`)
  assert.equal(image?.virtualSize, 3 * MiB)
  assert.equal((await Deno.stat(`${root}/built%2D1`)).mode! & 0o777, 0o444)

  await runTest(build("abandoned", false))
  assert.deepEqual([...Deno.readDirSync(`${root}/.working`)], [])
  assert.equal(await Deno.stat(`${root}/abandoned`).catch(() => undefined), undefined)

  // The name is taken: an error at once, unless --force.
  const taken = await runFailure(build("built-1", true))
  assert.match(String(taken), /An image named 'built-1' already exists/)
  await runTest(build("built-1", true, true))
  assert.deepEqual([...Deno.readDirSync(`${root}/.working`)], [])
})

Deno.test("commit fails if the name was taken while the build ran, keeping the other image", async () => {
  const root = await Deno.makeTempDir()
  const cause = await runFailure(withStore(root, (store) =>
    Effect.scoped(Effect.gen(function* () {
      const working = yield* store.begin({ _tag: "Store", name: "racy" }, { force: false })
      const disks = yield* DiskImages
      yield* disks.create({ path: working.path, sizeBytes: MiB })
      yield* Effect.promise(() => place(root, "racy", 2 * MiB))
      return yield* working.commit
    }))))
  assert.match(String(cause), /An image named .racy. already exists/)
  const info = await runTest(withStore(root, (store) => store.list))
  assert.deepEqual(info.map((image) => [image.name, image.virtualSize]), [["racy", 2 * MiB]])
  assert.deepEqual([...Deno.readDirSync(`${root}/.working`)], [])
})

Deno.test("a --local build goes next to the target through a hidden temporary file", async () => {
  const root = await Deno.makeTempDir()
  const buildDir = await Deno.makeTempDir()
  const target = `${buildDir}/out.qcow2`
  const image = await runTest(withStore(root, (store) =>
    Effect.scoped(Effect.gen(function* () {
      const working = yield* store.begin({ _tag: "Local", name: "out", path: target }, {
        force: false,
      })
      assert.ok(working.path.startsWith(`${buildDir}/.out.qcow2.`))
      const disks = yield* DiskImages
      yield* disks.create({ path: working.path, sizeBytes: MiB })
      return yield* working.commit
    }))))
  assert.equal(image.path, target)
  assert.deepEqual([...Deno.readDirSync(buildDir)].map((entry) => entry.name), ["out.qcow2"])
})

/** Hold the owner's lock of `path`, as a live process does, until the returned file is closed. */
const holdOwnerLock = (path: string): Deno.FsFile => {
  const lock = Deno.openSync(`${path}.lock`, { createNew: true, write: true })
  lock.lockSync(true)
  return lock
}

Deno.test("working files of processes that are gone are removed when a store opens", async () => {
  const root = await Deno.makeTempDir()
  await Deno.mkdir(`${root}/.working`)
  const uuid = crypto.randomUUID()
  // Without a lock file, or with one that nobody holds: their owners are gone.
  const stale = `base.${Deno.pid}.${uuid}.part`
  const unlocked = `base.${Deno.pid}.${crypto.randomUUID()}.qcow2`
  const live = `other.${2 ** 22 + 1}.${uuid}.qcow2`
  await Deno.writeTextFile(`${root}/.working/${stale}`, "half an image")
  await Deno.writeTextFile(`${root}/.working/${unlocked}`, "half an image")
  await Deno.writeTextFile(`${root}/.working/${unlocked}.lock`, "")
  await Deno.writeTextFile(`${root}/.working/${live}`, "in use")
  await Deno.writeTextFile(`${root}/.working/base.lock`, "")
  const owner = holdOwnerLock(`${root}/.working/${live}`)
  try {
    await runTest(withStore(root, (store) => store.list))
  } finally {
    owner.close()
  }
  const left = [...Deno.readDirSync(`${root}/.working`)].map((entry) => entry.name).sort()
  assert.deepEqual(left, ["base.lock", live, `${live}.lock`])
})

Deno.test("a --local build removes the working copies that killed builds left beside its target", async () => {
  const buildDir = await Deno.makeTempDir()
  const uuid = crypto.randomUUID()
  // Whatever the pids in the names say, only the held lock marks a live owner.
  const dead = `.out.qcow2.${Deno.pid}.${uuid}.tmp`
  const alive = `.out.qcow2.${2 ** 22 + 1}.${crypto.randomUUID()}.tmp`
  const unrelated = `.other.qcow2.${2 ** 22 + 1}.${uuid}.tmp`
  for (const name of [dead, alive, unrelated]) await Deno.writeTextFile(`${buildDir}/${name}`, "")
  const owner = holdOwnerLock(`${buildDir}/${alive}`)
  try {
    await runTest(withStore(
      await Deno.makeTempDir(),
      (store) =>
        Effect.scoped(
          store.begin({ _tag: "Local", name: "out", path: `${buildDir}/out.qcow2` }, {
            force: false,
          }),
        ),
    ))
  } finally {
    owner.close()
  }
  const left = [...Deno.readDirSync(buildDir)].map((entry) => entry.name).sort()
  assert.deepEqual(left, [alive, `${alive}.lock`, unrelated].sort())
})
