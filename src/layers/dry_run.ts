/**
 * The layers of `build --dry-run`: every helper-VM and qemu-img operation is described through
 * the Reporter instead of being done, and the image store is only consulted, never written.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ImageExists, StoreIoError } from "../domain/errors/store.ts"
import { convertArgv, overlayArgv } from "../domain/export_format.ts"
import { commandFor, quoteArgv, renderCommand } from "../domain/guest/commands.ts"
import { GuestOperation } from "../domain/guest/operation.ts"
import { GUEST_DEVICES } from "./qemu/qemu_machine.ts"
import { encodeImageName } from "../domain/image_spec.ts"
import { BuildVm } from "../services/build_vm.ts"
import { DiskImages } from "../services/disk_images.ts"
import { ImageStore } from "../services/image_store.ts"
import { LayerCache } from "../services/layer_cache.ts"
import { Reporter } from "../services/reporter.ts"

/**
 * The helper VM of a dry run: each operation the build hands it (mapped from the plan's actions
 * by src/domain/guest/action_operations.ts, as in a real build) prints the exact command the
 * QEMU layer would run for it (src/domain/guest/commands.ts), as a shell line.
 */
export const BuildVmDryRun = Layer.effect(
  BuildVm,
  Effect.map(Reporter, (reporter) => {
    const show = (operation: GuestOperation) =>
      reporter.detail(renderCommand(commandFor(operation)))
    return {
      identity: "dry-run",
      boot: (options) =>
        Effect.as(
          reporter.detail(
            `boot the helper VM (accel ${options.accel}, ${
              options.cpus ?? "default"
            } CPU, ${options.memoryMiB} MiB, ${
              options.network ? "user-mode network" : "no network"
            })`,
          ),
          {
            perform: show,
            // The layer itself is not read: a dry run downloads nothing.
            applyLayer: (operation) =>
              reporter.detail(
                `${
                  renderCommand(commandFor(operation))
                } < (layer ${operation.layer} of ${operation.source}, uncompressed)`,
              ),
            run: ({ command }) => Effect.as(show(GuestOperation.Run({ command })), 0),
            shell: Effect.as(
              show(
                GuestOperation.Shell({ console: GUEST_DEVICES.shellTty, rows: 24, columns: 80 }),
              ),
              0,
            ),
            snapshot: (next) =>
              Effect.forEach(
                [
                  renderCommand(commandFor(GuestOperation.Freeze())),
                  `(qmp) blockdev-snapshot-sync device=target snapshot-file=${next}`,
                  renderCommand(commandFor(GuestOperation.Thaw())),
                ],
                reporter.detail,
                { discard: true },
              ),
          },
        ),
    }
  }),
)

export const DiskImagesDryRun = Layer.effect(
  DiskImages,
  Effect.map(Reporter, (reporter) => {
    const host = (argv: ReadonlyArray<string>) => reporter.detail(`(host) ${quoteArgv(argv)}`)
    return {
      create: ({ path, sizeBytes }) =>
        host(["qemu-img", "create", "-f", "qcow2", path, String(sizeBytes)]),
      overlay: ({ path, backing, sizeBytes }) =>
        host([
          "qemu-img",
          ...overlayArgv({ path, backing, ...(sizeBytes === undefined ? {} : { sizeBytes }) }),
        ]),
      rebase: ({ path, backing }) =>
        host(["qemu-img", "rebase", "-u", "-b", backing, "-F", "qcow2", path]),
      convert: ({ from, to, target }) =>
        host([
          "qemu-img",
          ...convertArgv({ from, to, target: target ?? { qemuFormat: "qcow2", options: [] } }),
        ]),
      compress: ({ from, to }) => host(["zstd", "-q", "-3", "-T0", "-f", "-o", to, "--", from]),
      check: () => Effect.void,
      // Nothing is built, so nothing is read: the default firmware.
      firmware: () => Effect.succeed("bios" as const),
      info: (path) => Effect.succeed({ path, format: "qcow2", virtualSize: 0, actualSize: 0 }),
    }
  }),
)

/**
 * The store as a dry run sees it: FROM specs must resolve (present, or fetchable from the source
 * the spec names), an existing name without --force is still an error, and nothing is written.
 */
export const ImageStoreDryRun = Layer.effect(
  ImageStore,
  Effect.gen(function* () {
    const store = yield* ImageStore
    const reporter = yield* Reporter
    return {
      ...store,
      identity: () => Effect.succeed("dry-run"),
      remember: () => Effect.void,
      provenance: () => Effect.succeed(undefined),
      note: () => Effect.void,
      noted: () => Effect.succeed(undefined),
      resolve: (spec) =>
        store.lookup(spec).pipe(
          Effect.tap(({ name, present }) =>
            reporter.detail(
              present ? `(host) use '${name}' from the image store` : `(host) pull ${spec}`,
            )
          ),
          Effect.map(({ name }) => ({
            name,
            path: `${store.root}/${encodeImageName(name)}`,
            format: "qcow2",
            virtualSize: 0,
            actualSize: 0,
          })),
        ),
      begin: (target, { force }) =>
        Effect.gen(function* () {
          const taken = target._tag === "Store"
            ? (yield* store.list).some((image) => image.name === target.name)
            : yield* Effect.promise(() => Deno.lstat(target.path).then(() => true, () => false))
          const path = target._tag === "Store"
            ? `${store.root}/${encodeImageName(target.name)}`
            : target.path
          if (taken && !force) return yield* new ImageExists({ name: target.name, path })
          return {
            path: `${path} (working copy)`,
            target,
            commit: Effect.succeed({
              name: target.name,
              path,
              format: "qcow2",
              virtualSize: 0,
              actualSize: 0,
            }),
          }
        }).pipe(Effect.catchTag("DiskImageError", (cause) =>
          new StoreIoError({ operation: "look up", image: target.name, path: store.root, cause }))),
    }
  }),
)

/** A dry run neither reads nor writes the step cache: every step is described. */
export const LayerCacheDryRun = Layer.succeed(LayerCache, {
  root: "(none)",
  hits: () => Effect.succeed([]),
  workspace: Effect.succeed("(step cache workspace)"),
  keep: () => Effect.succeed([]),
  list: Effect.succeed([]),
  prune: () => Effect.succeed({ removed: 0, freedBytes: 0 }),
})
