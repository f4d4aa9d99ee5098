/**
 * The ImageStore contract, run against both implementations: ImageStoreMemory (what tests/fake
 * builds on) and ImageStoreDirectory over a temporary directory with qemu-img. Every case asserts
 * the same values, tags and messages for both, so the fake cannot drift from the real store.
 * Both are rooted at the same path, so messages that name it are equal too.
 */
import assert from "node:assert/strict"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { encodeImageName } from "../../src/domain/image_spec.ts"
import { STORE_RECORDS, storeRecordFileName } from "../../src/domain/store_record.ts"
import { DiskImagesMemory } from "../../src/layers/memory/disk_images_memory.ts"
import { ImageStoreMemory } from "../../src/layers/memory/image_store_memory.ts"
import { MemoryWorld } from "../../src/layers/memory/world.ts"
import { DiskImagesQemu } from "../../src/layers/qemu/disk_images_qemu.ts"
import { ReporterConsole } from "../../src/layers/reporter/reporter_console.ts"
import { RegistryHttp } from "../../src/layers/registry/registry_http.ts"
import { ImageStoreDirectory } from "../../src/layers/store/image_store_directory.ts"
import { DiskImages } from "../../src/services/disk_images.ts"
import { ImageStore, type ImageStoreShape } from "../../src/services/image_store.ts"
import { silentConsole } from "../support/silent_console.ts"
import { runTest } from "../support/effect.ts"

const MiB = 1024 * 1024

/** One implementation, fresh, rooted at `root`. */
interface Subject {
  readonly layer: Layer.Layer<ImageStore | DiskImages, unknown>
  /** Overwrite the record of the image `name` with `text`, as a crash or a hand edit would. */
  readonly writeRecord: (name: string, text: string) => Promise<void>
}

const recordPath = (root: string, name: string) =>
  `${root}/${STORE_RECORDS}/${storeRecordFileName(name)}`

const implementations: Record<string, (root: string) => Subject> = {
  memory: (root) => {
    const world = new MemoryWorld(root)
    return {
      layer: Layer.merge(ImageStoreMemory(world), DiskImagesMemory(world)),
      writeRecord: (name, text) =>
        Promise.resolve(void world.files.set(recordPath(root, name), text)),
    }
  },
  directory: (root) => ({
    layer: Layer.provideMerge(
      ImageStoreDirectory(root),
      Layer.mergeAll(DiskImagesQemu, ReporterConsole("plain", silentConsole), RegistryHttp(false)),
    ).pipe(Layer.provide(Layer.merge(NodeContext.layer, FetchHttpClient.layer))),
    writeRecord: (name, text) => Deno.writeTextFile(recordPath(root, name), text),
  }),
}

type Body = (
  store: ImageStoreShape,
  context: { readonly root: string; readonly subject: Subject },
) => Effect.Effect<void, unknown, DiskImages | Scope.Scope>

/** Register `body` as a test of each implementation. */
const contract = (name: string, body: Body) => {
  for (const [implementation, make] of Object.entries(implementations)) {
    Deno.test(`ImageStore (${implementation}): ${name}`, async () => {
      const root = await Deno.makeTempDir({ prefix: "store-contract-" })
      try {
        const subject = make(root)
        await runTest(
          Effect.flatMap(ImageStore, (store) => body(store, { root, subject })).pipe(
            Effect.scoped,
            Effect.provide(subject.layer),
          ),
        )
      } finally {
        await Deno.remove(root, { recursive: true })
      }
    })
  }
}

/** The error `effect` fails with, as its tag and message. */
const failure = <A, E extends { readonly _tag: string; readonly message: string }, R>(
  effect: Effect.Effect<A, E, R>,
) => Effect.map(Effect.flip(effect), (error) => ({ tag: error._tag, message: error.message }))

/** Publish an image of `size` bytes as `name`. */
const publish = (store: ImageStoreShape, name: string, force = false, size = MiB) =>
  Effect.scoped(Effect.gen(function* () {
    const working = yield* store.begin({ _tag: "Store", name }, { force })
    yield* Effect.flatMap(
      DiskImages,
      (disks) => disks.create({ path: working.path, sizeBytes: size }),
    )
    return yield* working.commit
  }))

contract(
  "a missing name is not found, by resolve and by lookup alike",
  (store) =>
    Effect.gen(function* () {
      const expected = {
        tag: "ImageNotFound",
        message: "No image named 'nowhere' found in the store, and no version provided, so it " +
          "cannot be downloaded (a Vagrant box is named owner/box:version)",
      }
      assert.deepEqual(yield* failure(store.resolve("nowhere")), expected)
      assert.deepEqual(yield* failure(store.lookup("nowhere")), expected)
      assert.deepEqual(yield* failure(store.lookup("gone,file=/nonexistent/disk.qcow2")), {
        tag: "SourceFileMissing",
        message: "Image file '/nonexistent/disk.qcow2' does not exist",
      })
      // A source it could be fetched from: lookup only says the store lacks it.
      assert.deepEqual(yield* store.lookup("far,http=http://127.0.0.1:9/x.img"), {
        name: "far",
        present: false,
      })
      assert.deepEqual(yield* failure(store.resolve(",x")), {
        tag: "InvalidImageSpec",
        message: "Invalid image spec ',x'",
      })
    }),
)

contract(
  "invalid names are refused with the same tag and message",
  (store) =>
    Effect.gen(function* () {
      const long = "n".repeat(201)
      const cases: ReadonlyArray<readonly [string, string]> = [
        [".hidden", "Invalid image name '.hidden' (it may not start with '.')"],
        [" ", "Invalid image name ' ' (it is empty)"],
        ["a\x01b", "Invalid image name 'a\\x01b' (it may not contain control characters)"],
        [
          long,
          `Invalid image name '${long}' (it is too long: 201 bytes as a file name, at most 200)`,
        ],
      ]
      for (const [name, message] of cases) {
        const expected = { tag: "InvalidImageName", message }
        assert.deepEqual(
          yield* failure(store.begin({ _tag: "Store", name }, { force: false })),
          expected,
        )
        assert.deepEqual(yield* failure(store.remove(name)), expected)
        assert.deepEqual(yield* failure(store.resolve(name)), { tag: "InvalidImageSpec", message })
      }
      assert.deepEqual(yield* store.list, [])
    }),
)

contract("begin, commit, list, resolve and remove", (store, { root }) =>
  Effect.gen(function* () {
    const built = yield* publish(store, "b-image", false, 3 * MiB)
    assert.equal(built.name, "b-image")
    assert.equal(built.path, `${root}/${encodeImageName("b-image")}`)
    assert.equal(built.virtualSize, 3 * MiB)
    yield* publish(store, "a/slash")
    yield* publish(store, "Zed")
    // Listed by code unit: upper case first.
    assert.deepEqual((yield* store.list).map((image) => image.name), ["Zed", "a/slash", "b-image"])
    const resolved = yield* store.resolve("b-image")
    assert.deepEqual([resolved.name, resolved.path], ["b-image", built.path])
    assert.deepEqual(yield* store.lookup("a/slash"), { name: "a/slash", present: true })

    yield* store.remove("a/slash")
    assert.deepEqual((yield* store.list).map((image) => image.name), ["Zed", "b-image"])
    assert.deepEqual(yield* failure(store.remove("a/slash")), {
      tag: "ImageNotInStore",
      message: `No image named 'a/slash' in ${root}`,
    })
    assert.equal((yield* failure(store.resolve("a/slash"))).tag, "ImageNotFound")
  }))

contract("a scope closed without a commit publishes nothing", (store) =>
  Effect.gen(function* () {
    yield* Effect.scoped(Effect.gen(function* () {
      const working = yield* store.begin({ _tag: "Store", name: "abandoned" }, { force: false })
      yield* Effect.flatMap(DiskImages, (disks) =>
        disks.create({ path: working.path, sizeBytes: MiB }))
    }))
    assert.deepEqual(yield* store.list, [])
    // A commit of nothing written is the store's own failure to publish.
    const error = yield* Effect.scoped(Effect.flip(Effect.flatMap(
      store.begin({ _tag: "Store", name: "empty" }, { force: false }),
      (working) =>
        working.commit,
    )))
    assert.equal(error._tag, "StoreIoError")
    assert.equal(error._tag === "StoreIoError" && error.operation, "publish")
    assert.deepEqual(yield* store.list, [])
  }))

contract(
  "a taken name needs force, at begin and again at commit",
  (store, { root }) =>
    Effect.gen(function* () {
      yield* publish(store, "taken")
      const exists = {
        tag: "ImageExists",
        message:
          `An image named 'taken' already exists at ${root}/taken (use --force to replace it)`,
      }
      assert.deepEqual(yield* failure(publish(store, "taken")), exists)
      const replaced = yield* publish(store, "taken", true, 2 * MiB)
      assert.equal(replaced.virtualSize, 2 * MiB)
      assert.deepEqual((yield* store.list).map((image) => image.virtualSize), [2 * MiB])

      // Taken while the build ran: the commit fails and the other image stays.
      const racing = yield* failure(Effect.scoped(Effect.gen(function* () {
        const working = yield* store.begin({ _tag: "Store", name: "racy" }, { force: false })
        yield* Effect.flatMap(
          DiskImages,
          (disks) => disks.create({ path: working.path, sizeBytes: MiB }),
        )
        yield* publish(store, "racy", false, 4 * MiB)
        return yield* working.commit
      })))
      assert.deepEqual(racing, {
        tag: "ImageExists",
        message: `An image named 'racy' already exists at ${root}/racy (use --force to replace it)`,
      })
      assert.equal((yield* store.resolve("racy")).virtualSize, 4 * MiB)
    }),
)

contract(
  "records: identity, provenance and notes hold until the image is replaced",
  (store) =>
    Effect.gen(function* () {
      const image = yield* publish(store, "built")
      const provenance = {
        imagefileDigest: `sha256:${"a".repeat(64)}`,
        builtAt: "2026-01-02T03:04:05Z",
      }
      yield* store.remember(image, "sha256:remembered", provenance)
      yield* store.note(image, "layer", "sha256:layer")
      assert.equal(yield* store.identity(image), "sha256:remembered")
      assert.deepEqual(yield* store.provenance(image), provenance)
      assert.equal(yield* store.noted(image, "layer"), "sha256:layer")
      assert.equal(yield* store.noted(image, "other"), undefined)

      const replaced = yield* publish(store, "built", true, 2 * MiB)
      const computed = yield* store.identity(replaced)
      assert.match(computed, /^sha256:/)
      assert.notEqual(computed, "sha256:remembered")
      // Computed once, then recorded.
      assert.equal(yield* store.identity(replaced), computed)
      assert.equal(yield* store.provenance(replaced), undefined)
      assert.equal(yield* store.noted(replaced, "layer"), undefined)
    }),
)

contract(
  "a corrupt record is ignored: identity is computed again",
  (store, { subject }) =>
    Effect.gen(function* () {
      const image = yield* publish(store, "built")
      const provenance = {
        imagefileDigest: `sha256:${"b".repeat(64)}`,
        builtAt: "2026-01-02T03:04:05Z",
      }
      for (const text of ["{not json", JSON.stringify({ identity: 5, size: "big" })]) {
        yield* store.remember(image, "sha256:remembered", provenance)
        yield* store.note(image, "layer", "sha256:layer")
        yield* Effect.promise(() => subject.writeRecord("built", text))
        assert.equal(yield* store.provenance(image), undefined)
        assert.equal(yield* store.noted(image, "layer"), undefined)
        const identity = yield* store.identity(image)
        assert.match(identity, /^sha256:/)
        assert.notEqual(identity, "sha256:remembered")
      }
    }),
)
