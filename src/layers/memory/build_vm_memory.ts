/**
 * BuildVm in memory: a simulated guest working on a SimDisk of the MemoryWorld — a partition
 * table, a tree per filesystem, a mount table — that records every typed operation. RUN does
 * what the world's `runScript` says.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { GuestCommandFailed } from "../../domain/errors/vm.ts"
import type { GuestSource } from "../../domain/guest/operation.ts"
import type { MountPoint } from "../../domain/plan.ts"
import { BuildContext } from "../../services/build_context.ts"
import { BuildVm, type SessionOperation, type VmSession } from "../../services/build_vm.ts"
import {
  basename,
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

const session = (
  world: MemoryWorld,
  disk: SimDisk,
  diskPath: string,
  context: typeof BuildContext.Service,
): VmSession => {
  let active = diskPath
  // The mount table: guest path -> partition, deepest paths resolved first.
  const mounts: Array<MountPoint> = []
  let chroot = false

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

  const guestIsDirectory = (path: string) => {
    const place = locate(path)
    return place !== undefined && isDirectory(place.tree, place.inner)
  }

  /** Copy one build-context source the way `cp -a` does: a directory gives its contents. */
  const copySource = Effect.fn("BuildVmMemory.copySource")(function* (
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
      yield* write(operation, path, simNode)
    }
  })

  const perform = (operation: SessionOperation): Effect.Effect<void, GuestCommandFailed> => {
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
        const target = partition(number)
        if (!target) return Effect.fail(fail("format", `partition ${number} does not exist`))
        return Effect.sync(() => {
          target.filesystem = { fs, options, tree: newTree() }
          world.record({ op: "format", partition: number, fs })
        })
      }

      case "MountPartitions":
        return Effect.forEach(operation.mounts, (point) => {
          if (!partition(point.partition)?.filesystem) {
            return Effect.fail(
              fail(
                "mount",
                `partition ${point.partition} has no filesystem to mount at ${point.path}`,
              ),
            )
          }
          if (point.path !== "/" && !locate(point.path)) {
            return Effect.fail(fail("mount", `nothing is mounted at / (mounting ${point.path})`))
          }
          return Effect.sync(() => {
            const parent = locate(point.path)
            if (parent) mkdirs(parent.tree, parent.inner)
            mounts.push(point)
            world.record({ op: "mount", partition: point.partition, path: point.path })
          })
        }, { discard: true })

      case "DiscoverRoot": {
        const root = disk.partitions.find((p) => p.filesystem?.tree.get("/etc/fstab"))
        const fstab = root?.filesystem?.tree.get("/etc/fstab")
        if (!root || fstab?.kind !== "file") {
          return Effect.fail(fail("find the root filesystem", "no filesystem holds /etc/fstab"))
        }
        return Effect.sync(() => {
          mounts.push({ partition: root.layout.number, path: "/" })
          world.record({ op: "discover-root", root: root.layout.number })
          // The simulated fstab names partitions by device: `/dev/sdaN /path fstype ...`.
          for (const line of new TextDecoder().decode(fstab.content).split("\n")) {
            const [device, path, fs] = line.trim().split(/\s+/)
            const number = /^\/dev\/[sv]da(\d+)$/.exec(device ?? "")?.[1]
            if (!number || !path || path === "/" || fs === "swap" || line.startsWith("#")) continue
            mounts.push({ partition: Number(number), path })
            world.record({ op: "mount", partition: Number(number), path })
          }
        })
      }

      case "PrepareChroot":
        return Effect.sync(() => {
          chroot = true
          world.record({ op: "prepare-chroot" })
        })

      case "CopyIn":
        return Effect.gen(function* () {
          const { sources, destination } = operation
          world.record({ op: "copy", sources: sources.map((s) => s.path), destination })
          const intoDirectory = destination.endsWith("/") || sources.length > 1 ||
            guestIsDirectory(destination)
          for (const source of sources) {
            yield* copySource("copy", source, destination, intoDirectory)
          }
        })

      case "Extract":
        return Effect.gen(function* () {
          const { source, destination } = operation
          world.record({ op: "extract", source: source.path, destination })
          const nodes = yield* context.walk(source).pipe(
            Effect.mapError((error) => fail("extract", error.message)),
          )
          const raw = source.kind === "file" ? nodes[0]?.content : undefined
          const bytes = raw && isGzip(raw) ? yield* Effect.promise(() => gunzip(raw)) : raw
          if (!bytes || !isTar(bytes)) {
            return yield* copySource(
              "extract",
              source,
              destination,
              destination.endsWith("/") || guestIsDirectory(destination),
            )
          }
          for (const { path, node } of readTar(bytes)) {
            yield* write("extract", join(destination, path), node)
          }
        })

      case "Sync":
        return Effect.sync(() => world.record({ op: "sync" }))

      case "Freeze":
      case "Thaw":
        return Effect.void

      case "Release":
        return Effect.sync(() => world.record({ op: "release" }))
    }
  }

  return {
    perform,

    run: Effect.fn("BuildVmMemory.run")(function* ({ command, onOutput }) {
      if (!chroot) return yield* fail("run", "the chroot was not prepared before RUN")
      world.record({ op: "run", command })
      const scripted = world.runScript(command, guest)
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
