/**
 * DiskImages in memory: disks are SimDisk values in the MemoryWorld, keyed by path.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { DiskImageError } from "../../domain/errors/store.ts"
import { DiskImages } from "../../services/disk_images.ts"
import { cloneTree } from "./sim_fs.ts"
import type { MemoryWorld, SimDisk } from "./world.ts"

export const cloneDisk = (disk: SimDisk): SimDisk => ({
  sizeBytes: disk.sizeBytes,
  ...(disk.table ? { table: disk.table } : {}),
  partitions: disk.partitions.map((partition) => ({
    layout: partition.layout,
    ...(partition.filesystem
      ? { filesystem: { ...partition.filesystem, tree: cloneTree(partition.filesystem.tree) } }
      : {}),
  })),
})

/** Bytes held by a disk's files, as a stand-in for the qcow2's allocated size. */
export const usedBytes = (disk: SimDisk): number =>
  disk.partitions.reduce((sum, partition) => {
    let bytes = 0
    for (const node of partition.filesystem?.tree.values() ?? []) {
      bytes += node.kind === "file" ? node.content.length : 0
    }
    return sum + bytes
  }, 0)

export const DiskImagesMemory = (world: MemoryWorld) =>
  Layer.succeed(DiskImages, {
    create: ({ path, sizeBytes }) =>
      Effect.sync(() => {
        world.disks.set(path, { sizeBytes, partitions: [] })
        world.record({ op: "create-disk", path, sizeBytes })
      }),
    overlay: ({ path, backing, sizeBytes }) =>
      Effect.tap(copy(world, backing, path, "overlay"), () => {
        const disk = world.disks.get(path)
        if (disk !== undefined && sizeBytes !== undefined) {
          world.disks.set(path, { ...disk, sizeBytes })
        }
      }),
    // A memory disk holds all its content: only the backing name in its header changes.
    rebase: ({ path, backing }) => {
      const disk = world.disks.get(path)
      return disk
        ? Effect.sync(() => {
          disk.backing = backing
          world.record({ op: "rebase", path, backing })
        })
        : Effect.fail(new DiskImageError({ operation: "rebase", path, reason: "no such image" }))
    },
    convert: ({ from, to, target }) => copy(world, from, to, "convert", target?.qemuFormat),
    // A memory disk has no bytes to compress: the copy stands for the compressed file.
    compress: ({ from, to }) => copy(world, from, to, "compress"),
    check: () => Effect.void,
    // A memory disk has no boot code: an ESP makes it UEFI.
    firmware: (path) => {
      const disk = world.disks.get(path)
      return disk
        ? Effect.succeed(
          disk.partitions.some((partition) => partition.layout.type === "efi") ? "uefi" : "bios",
        )
        : Effect.fail(new DiskImageError({ operation: "inspect", path, reason: "no such image" }))
    },
    info: (path) => {
      const disk = world.disks.get(path)
      return disk
        ? Effect.succeed({
          path,
          format: "qcow2",
          virtualSize: disk.sizeBytes,
          actualSize: usedBytes(disk),
        })
        : Effect.fail(new DiskImageError({ operation: "inspect", path, reason: "no such image" }))
    },
  })

const copy = (
  world: MemoryWorld,
  from: string,
  to: string,
  operation: string,
  format?: string,
) => {
  const disk = world.disks.get(from)
  if (!disk) {
    return Effect.fail(new DiskImageError({ operation, path: from, reason: "no such image" }))
  }
  return Effect.sync(() => {
    world.disks.set(to, cloneDisk(disk))
    world.record({
      op: "convert",
      from,
      to,
      ...(format === undefined || format === "qcow2" ? {} : { format }),
    })
  })
}
