/**
 * BuildVm in memory: a simulated guest working on a SimDisk of the MemoryWorld — a partition
 * table, a tree per filesystem, a mount table — that records every typed operation. RUN does
 * what the world's `runScript` says.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { concatBytes } from "../../domain/bytes.ts"
import { classifyLayerEntry } from "../../domain/whiteout.ts"
import { GuestCommandFailed } from "../../domain/errors/vm.ts"
import type { GuestSource } from "../../domain/guest/operation.ts"
import type { MountPoint } from "../../domain/plan.ts"
import { BuildContext } from "../../services/build_context.ts"
import {
  type ApplyLayerOperation,
  BuildVm,
  type SessionOperation,
  type VmSession,
} from "../../services/build_vm.ts"
import {
  basename,
  childrenOf,
  isDirectory,
  join,
  mkdirs,
  newTree,
  normalize,
  put,
  type SimNode,
  type SimTree,
} from "./sim_fs.ts"
import { cloneDisk } from "./disk_images_memory.ts"
import { gunzip, isGzip, isTar, readTar } from "./sim_tar.ts"
import type { MemoryWorld, SimDisk, SimGuest } from "./world.ts"

const encoder = new TextEncoder()

const fail = (operation: string, reason: string) => new GuestCommandFailed({ operation, reason })

export const BuildVmMemory = (world: MemoryWorld) =>
  Layer.effect(
    BuildVm,
    Effect.gen(function* () {
      const context = yield* BuildContext
      return {
        identity: "memory-guest",
        boot: Effect.fn("BuildVmMemory.boot")(function* (options) {
          const disk = world.disks.get(options.disk)
          if (!disk) return yield* fail("boot", `the disk ${options.disk} does not exist`)
          yield* Effect.acquireRelease(
            Effect.sync(() => {
              world.openSessions += 1
              world.record({ op: "boot", disk: options.disk, network: options.network })
            }),
            () =>
              Effect.sync(() => {
                world.openSessions -= 1
                world.record({ op: "shutdown" })
              }),
          )
          return session(world, disk, options.disk, context)
        }),
      }
    }),
  )

/** The guest's view of the disk: its mount table, and the image's paths resolved through it. */
const guestFiles = (disk: SimDisk) => {
  // The mount table: guest path -> partition, deepest paths resolved first.
  const mounts: Array<MountPoint> = []

  const partition = (number: number) => disk.partitions.find((p) => p.layout.number === number)

  /** The tree and in-filesystem path that a path of the image lands on. */
  const locate = (path: string): { tree: SimTree; inner: string } | undefined => {
    const target = normalize(path)
    const mount = [...mounts]
      .filter((m) => m.path === "/" || target === m.path || target.startsWith(m.path + "/"))
      .sort((a, b) => b.path.length - a.path.length)[0]
    const tree = mount && partition(mount.partition)?.filesystem?.tree
    if (!mount || !tree) return undefined
    return { tree, inner: normalize(target.slice(mount.path === "/" ? 0 : mount.path.length)) }
  }

  const write = (operation: string, path: string, node: SimNode) => {
    const place = locate(path)
    if (!place) return Effect.fail(fail(operation, `nothing is mounted at / (writing ${path})`))
    return Effect.sync(() => put(place.tree, place.inner, node))
  }

  const guest: SimGuest = {
    read: (path) => {
      const place = locate(path)
      const node = place?.tree.get(place.inner)
      return node?.kind === "file" ? node.content : undefined
    },
    writeFile: (path, content, mode = 0o644) => {
      const place = locate(path)
      if (!place) throw new Error(`nothing is mounted at / (writing ${path})`)
      const bytes = typeof content === "string" ? encoder.encode(content) : content
      put(place.tree, place.inner, { kind: "file", content: bytes, mode, uid: 0, gid: 0 })
    },
    symlink: (path, target) => {
      const place = locate(path)
      if (!place) throw new Error(`nothing is mounted at / (writing ${path})`)
      put(place.tree, place.inner, { kind: "symlink", target, mode: 0o777, uid: 0, gid: 0 })
    },
  }

  const isDirectoryAt = (path: string) => {
    const place = locate(path)
    return place !== undefined && isDirectory(place.tree, place.inner)
  }

  /** Remove `path` and everything below it, if there. */
  const remove = (path: string) => {
    const place = locate(path)
    if (place === undefined) return
    for (const child of childrenOf(place.tree, place.inner)) place.tree.delete(child)
    place.tree.delete(place.inner)
  }

  /** Empty the directory at `path`, keeping it. */
  const removeBelow = (path: string) => {
    const place = locate(path)
    if (place === undefined) return
    for (const child of childrenOf(place.tree, place.inner)) place.tree.delete(child)
  }

  return { mounts, partition, locate, write, remove, removeBelow, guest, isDirectoryAt }
}

type GuestFiles = ReturnType<typeof guestFiles>

/** What the simulated operations work with. */
interface SimMachine {
  readonly world: MemoryWorld
  readonly disk: SimDisk
  readonly files: GuestFiles
  readonly context: typeof BuildContext.Service
}

/** Copy one build-context source the way `cp -a` does: a directory gives its contents. */
const copySource = Effect.fn("BuildVmMemory.copySource")(function* (
  { context, files }: SimMachine,
  operation: string,
  source: GuestSource,
  destination: string,
  intoDirectory: boolean,
) {
  const nodes = yield* context.walk(source).pipe(
    Effect.mapError((error) => fail(operation, error.message)),
  )
  const target = source.kind === "directory"
    ? destination
    : intoDirectory
    ? join(destination, basename(source.path))
    : destination
  for (const node of nodes) {
    const path = node.path === "" ? target : join(target, node.path)
    const owner = { mode: node.mode, uid: 0, gid: 0 }
    const simNode: SimNode = node.kind === "directory"
      ? { kind: "directory", ...owner }
      : node.kind === "symlink"
      ? { kind: "symlink", target: node.target ?? "", ...owner }
      : { kind: "file", content: node.content ?? new Uint8Array(), ...owner }
    yield* files.write(operation, path, simNode)
  }
})

const mountPartitions = ({ world, files }: SimMachine, points: ReadonlyArray<MountPoint>) =>
  Effect.forEach(points, (point) => {
    if (!files.partition(point.partition)?.filesystem) {
      return Effect.fail(
        fail("mount", `partition ${point.partition} has no filesystem to mount at ${point.path}`),
      )
    }
    if (point.path !== "/" && !files.locate(point.path)) {
      return Effect.fail(fail("mount", `nothing is mounted at / (mounting ${point.path})`))
    }
    return Effect.sync(() => {
      const parent = files.locate(point.path)
      if (parent) mkdirs(parent.tree, parent.inner)
      files.mounts.push(point)
      world.record({ op: "mount", partition: point.partition, path: point.path })
    })
  }, { discard: true })

const discoverRoot = ({ world, disk, files }: SimMachine) => {
  const root = disk.partitions.find((p) => p.filesystem?.tree.get("/etc/fstab"))
  const fstab = root?.filesystem?.tree.get("/etc/fstab")
  if (!root || fstab?.kind !== "file") {
    return Effect.fail(fail("find the root filesystem", "no filesystem holds /etc/fstab"))
  }
  return Effect.sync(() => {
    files.mounts.push({ partition: root.layout.number, path: "/" })
    world.record({ op: "discover-root", root: root.layout.number })
    // The simulated fstab names partitions by device: `/dev/sdaN /path fstype ...`.
    for (const line of new TextDecoder().decode(fstab.content).split("\n")) {
      const [device, path, fs] = line.trim().split(/\s+/)
      const number = /^\/dev\/[sv]da(\d+)$/.exec(device ?? "")?.[1]
      if (!number || !path || path === "/" || fs === "swap" || line.startsWith("#")) continue
      files.mounts.push({ partition: Number(number), path })
      world.record({ op: "mount", partition: Number(number), path })
    }
  })
}

const copyIn = Effect.fn("BuildVmMemory.copyIn")(function* (
  machine: SimMachine,
  sources: ReadonlyArray<GuestSource>,
  destination: string,
) {
  machine.world.record({ op: "copy", sources: sources.map((s) => s.path), destination })
  const intoDirectory = destination.endsWith("/") || sources.length > 1 ||
    machine.files.isDirectoryAt(destination)
  for (const source of sources) {
    yield* copySource(machine, "copy", source, destination, intoDirectory)
  }
})

const extract = Effect.fn("BuildVmMemory.extract")(function* (
  machine: SimMachine,
  source: GuestSource,
  destination: string,
) {
  machine.world.record({ op: "extract", source: source.path, destination })
  const nodes = yield* machine.context.walk(source).pipe(
    Effect.mapError((error) => fail("extract", error.message)),
  )
  const raw = source.kind === "file" ? nodes[0]?.content : undefined
  const bytes = raw && isGzip(raw) ? yield* Effect.promise(() => gunzip(raw)) : raw
  if (!bytes || !isTar(bytes)) {
    return yield* copySource(
      machine,
      "extract",
      source,
      destination,
      destination.endsWith("/") || machine.files.isDirectoryAt(destination),
    )
  }
  for (const { path, node } of readTar(bytes)) {
    yield* machine.files.write("extract", join(destination, path), node)
  }
})

/**
 * One container-image layer onto the simulated disk: its entries written in order, a whiteout
 * removing its target and an opaque marker its directory's earlier contents (the layer's own
 * entries are written after the lower layers' are gone, so the simple order holds for the
 * layers tests make: markers before siblings, as image-spec asks of layer writers).
 */
const applyLayer = Effect.fn("BuildVmMemory.applyLayer")(function* <E>(
  machine: SimMachine,
  operation: ApplyLayerOperation,
  tar: Stream.Stream<Uint8Array, E>,
) {
  const chunks = yield* Stream.runCollect(tar)
  machine.world.record({
    op: "apply-layer",
    source: operation.source,
    layer: operation.layer,
    destination: operation.destination,
  })
  const bytes = concatBytes(Chunk.toReadonlyArray(chunks))
  for (const { path, node } of readTar(bytes)) {
    const relative = path.slice(1) || "."
    const entry = classifyLayerEntry(relative)
    if (Either.isLeft(entry)) return yield* fail("apply a layer", entry.left)
    const target = (inner: string) => join(operation.destination, inner)
    switch (entry.right._tag) {
      case "Whiteout":
        machine.files.remove(target(entry.right.target))
        break
      case "OpaqueDirectory":
        machine.files.removeBelow(target(entry.right.directory))
        break
      case "AufsMetadata":
        break
      case "Plain":
        yield* machine.files.write("apply a layer", target(entry.right.path), node)
    }
  }
})

/** One operation on the simulated disk; PrepareChroot is the session's to record. */
const performOn = (
  machine: SimMachine,
  operation: Exclude<SessionOperation, { readonly _tag: "PrepareChroot" }>,
): Effect.Effect<void, GuestCommandFailed> => {
  const { world, disk, files } = machine
  switch (operation._tag) {
    case "PartitionDisk":
      return Effect.sync(() => {
        const { layout } = operation
        disk.table = layout.table
        disk.partitions = layout.partitions.map((p) => ({ layout: p }))
        world.record({ op: "partition", table: layout.table, count: layout.partitions.length })
      })
    case "Format": {
      const { partition: number, fs, options } = operation
      const target = files.partition(number)
      if (!target) return Effect.fail(fail("format", `partition ${number} does not exist`))
      return Effect.sync(() => {
        target.filesystem = { fs, options, tree: newTree() }
        world.record({ op: "format", partition: number, fs })
      })
    }
    case "MountPartitions":
      return mountPartitions(machine, operation.mounts)
    case "DiscoverRoot":
      return discoverRoot(machine)
    case "CopyIn":
      return copyIn(machine, operation.sources, operation.destination)
    case "Extract":
      return extract(machine, operation.source, operation.destination)
    case "Sync":
      return Effect.sync(() => world.record({ op: "sync" }))
    case "Freeze":
    case "Thaw":
      return Effect.void
    case "Release":
      return Effect.sync(() => world.record({ op: "release" }))
  }
}

const session = (
  world: MemoryWorld,
  disk: SimDisk,
  diskPath: string,
  context: typeof BuildContext.Service,
): VmSession => {
  let active = diskPath
  let chroot = false
  const machine: SimMachine = { world, disk, files: guestFiles(disk), context }

  return {
    perform: (operation) =>
      operation._tag === "PrepareChroot"
        ? Effect.sync(() => {
          chroot = true
          world.record({ op: "prepare-chroot" })
        })
        : performOn(machine, operation),

    applyLayer: (operation, tar) => applyLayer(machine, operation, tar),

    run: Effect.fn("BuildVmMemory.run")(function* ({ command, onOutput }) {
      if (!chroot) return yield* fail("run", "the chroot was not prepared before RUN")
      world.record({ op: "run", command })
      const scripted = world.runScript(command, machine.files.guest)
      const outcome = Effect.isEffect(scripted) ? yield* scripted : scripted
      if (outcome.stdout) yield* onOutput("stdout", encoder.encode(outcome.stdout))
      if (outcome.stderr) yield* onOutput("stderr", encoder.encode(outcome.stderr))
      return outcome.exitCode ?? 0
    }),

    shell: Effect.sync(() => {
      world.record({ op: "shell" })
      return 0
    }),

    // The current file keeps a copy of the disk as it is; the live disk goes on under `next`.
    snapshot: (next) =>
      Effect.sync(() => {
        world.disks.set(active, cloneDisk(disk))
        world.disks.set(next, disk)
        world.record({ op: "snapshot", layer: active, next })
        active = next
      }),
  }
}
