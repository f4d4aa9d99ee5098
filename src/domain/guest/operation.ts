/**
 * GuestOperation: everything a build asks of the helper VM, as data. The QEMU layer runs an
 * operation's commands (./commands.ts), the dry run prints them and the memory layer simulates
 * them; each switches on `_tag` once.
 */
import * as Data from "effect/Data"
import type { Filesystem } from "../imagefile/ast.ts"
import type { DiskLayout, MountPoint } from "../plan.ts"

/** A source of COPY/ADD, as the build context resolved it. */
export interface GuestSource {
  /** As the Imagefile wrote it (for messages). */
  readonly source: string
  /** Relative to BUILD_DIR, `/`-separated (`.` for BUILD_DIR itself). */
  readonly path: string
  readonly kind: "file" | "directory" | "symlink"
}

export type GuestOperation = Data.TaggedEnum<{
  /** Write the partition table and create every partition of `layout`. */
  PartitionDisk: { readonly layout: DiskLayout }
  /** mkfs on a fresh partition, with the Imagefile's OPTIONS as separate arguments. */
  Format: {
    readonly partition: number
    readonly fs: Filesystem
    readonly options: ReadonlyArray<string>
  }
  /** Mount partitions under the build root, in the order given (shallowest first). */
  MountPartitions: { readonly mounts: ReadonlyArray<MountPoint> }
  /**
   * For `FROM <image>`: find the root filesystem (the one with /etc/fstab), mount the rest as
   * its fstab says (a device of any disk name is taken for the build's disk).
   */
  DiscoverRoot: Record<never, never>
  /**
   * Make the disk's /dev/disk/by-* links, then mount dev, dev/pts, dev/shm, proc, sys, run, tmp
   * and resolv.conf in the build root.
   */
  PrepareChroot: Record<never, never>
  /**
   * COPY: a directory source copies its contents; with several sources, or a destination
   * ending in `/`, the destination is a directory. Modes are kept, parents created.
   */
  CopyIn: { readonly sources: ReadonlyArray<GuestSource>; readonly destination: string }
  /** ADD of one source: an archive is extracted into the destination, anything else copied. */
  Extract: { readonly source: GuestSource; readonly destination: string }
  /**
   * One layer of ADD's container image (`source`, as written), applied onto the destination
   * directory with the layer rules (whiteouts, owners, xattrs); the host streams the layer's
   * uncompressed tar to the command's stdin.
   */
  ApplyLayer: { readonly source: string; readonly layer: string; readonly destination: string }
  /** RUN: `/bin/sh -c COMMAND` as root, chrooted into the image, in its own PID namespace. */
  Run: { readonly command: string }
  /** INSPECT: a login shell in the build root on the guest terminal `console`. */
  Shell: { readonly console: string; readonly rows: number; readonly columns: number }
  /** Flush everything written to the working disk. */
  Sync: Record<never, never>
  /** Before a snapshot of the disk: flush, and freeze the image's filesystems that can be. */
  Freeze: Record<never, never>
  /** After the snapshot: thaw what Freeze froze. */
  Thaw: Record<never, never>
  /** Unmount the build root (deepest first) and deactivate LVM, before the VM powers off. */
  Release: Record<never, never>
}>

export const GuestOperation = Data.taggedEnum<GuestOperation>()

/** What the VM is doing, as words that follow "Helper VM failed to". */
export const describeOperation = (operation: GuestOperation): string =>
  GuestOperation.$match(operation, {
    PartitionDisk: () => "partition the disk",
    Format: ({ partition, fs }) => `format partition ${partition} as ${fs}`,
    MountPartitions: () => "mount the partitions",
    DiscoverRoot: () => "find the image's root filesystem",
    PrepareChroot: () => "prepare the chroot",
    CopyIn: ({ sources }) => `copy ${sources.map((source) => source.source).join(", ")}`,
    Extract: ({ source }) => `add ${source.source}`,
    ApplyLayer: ({ source, layer }) => `add layer ${layer} of ${source}`,
    Run: () => "run the command",
    Shell: () => "open a shell",
    Sync: () => "sync the disk",
    Freeze: () => "freeze the image's filesystems",
    Thaw: () => "thaw the image's filesystems",
    Release: () => "unmount the image",
  })
