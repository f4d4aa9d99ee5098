/**
 * The helper VM of a build and the chain of layer files it writes. The VM boots on the chain's
 * active file; after a layer, a snapshot closes that file as the layer and the VM goes on
 * writing a new one over it. The files live in the step cache's workspace.
 *
 * The VM lives in a scope of its own, so it can be stopped before the image is published; on
 * failure the build's scope closes it first, then removes the working image.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import type { DiskImageError } from "../../domain/errors/store.ts"
import type { VmError } from "../../domain/errors/vm.ts"
import { GuestOperation } from "../../domain/guest/operation.ts"
import type { LayerSpec } from "../../domain/step_keys.ts"
import {
  type BootOptions,
  BuildVm,
  type SessionOperation,
  type VmSession,
} from "../../services/build_vm.ts"
import { DiskImages } from "../../services/disk_images.ts"
import { type FinishedLayer, LayerCache } from "../../services/layer_cache.ts"
import { Reporter } from "../../services/reporter.ts"

export interface VmChain {
  /** The file the VM writes. */
  readonly active: () => string
  /** The layers closed so far, oldest first: kept once the VM has stopped. */
  readonly finished: ReadonlyArray<FinishedLayer>
  /** Boot the VM on a new, empty disk of `sizeBytes`. */
  readonly bootOnNewDisk: (sizeBytes: number) => Effect.Effect<void, DiskImageError | VmError>
  /** Boot the VM on a new file over `backing`, which is never written. */
  readonly bootOver: (backing: string) => Effect.Effect<void, DiskImageError | VmError>
  /** The running VM's session; the plan boots it before any step that needs it. */
  readonly session: Effect.Effect<VmSession>
  /** Perform an operation in the VM; the chroot is prepared once. */
  readonly perform: (operation: SessionOperation) => Effect.Effect<void, VmError>
  /** Close the active file as `layer`'s, and write a new file over it from now on. */
  readonly closeLayer: (layer: LayerSpec) => Effect.Effect<void, VmError>
  /** Count the active file as `layer`'s, once the VM has stopped writing it. */
  readonly finishWith: (layer: LayerSpec) => void
  /** Flush the disk, if a VM ran. */
  readonly sync: Effect.Effect<void, VmError>
  /** Stop the VM, whole or not at all, ending its scope as the build's work ended. */
  readonly stop: (ended: Exit.Exit<unknown, unknown>) => Effect.Effect<void>
}

export const makeVmChain = Effect.fn("build.vmChain")(function* (
  vmOptions: Omit<BootOptions, "disk">,
) {
  const vm = yield* BuildVm
  const disks = yield* DiskImages
  const reporter = yield* Reporter
  const workspace: string = yield* (yield* LayerCache).workspace
  const vmScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)

  const state = {
    files: 0,
    active: "",
    session: undefined as VmSession | undefined,
    chrootReady: false,
    finished: [] as Array<FinishedLayer>,
  }
  const nextFile = () => `${workspace}/disk-${state.files++}.qcow2`
  state.active = nextFile()

  const boot = Effect.fn("build.boot")(function* () {
    state.session = yield* vm.boot({ ...vmOptions, disk: state.active }).pipe(
      Scope.extend(vmScope),
    )
  })
  const session = Effect.suspend(() =>
    state.session === undefined
      ? Effect.dieMessage("the helper VM was not started before the step that needs it")
      : Effect.succeed(state.session)
  )
  const perform = Effect.fn("build.operation")(function* (operation: SessionOperation) {
    if (operation._tag === "PrepareChroot" && state.chrootReady) return
    yield* (yield* session).perform(operation)
    if (operation._tag === "PrepareChroot") state.chrootReady = true
  })
  const closeLayer = Effect.fn("build.snapshot")(function* (layer: LayerSpec) {
    const next = nextFile()
    const snapshotStarted = yield* Clock.currentTimeMillis
    yield* (yield* session).snapshot(next)
    const snapshotMs = (yield* Clock.currentTimeMillis) - snapshotStarted
    yield* reporter.detail(`layer ${layer.key.slice(0, 12)} (snapshot ${snapshotMs} ms)`)
    state.finished.push({ key: layer.key, text: layer.text, path: state.active })
    state.active = next
  })

  return {
    active: () => state.active,
    finished: state.finished,
    bootOnNewDisk: (sizeBytes) =>
      Effect.zipRight(disks.create({ path: state.active, sizeBytes }), boot()),
    bootOver: (backing) => Effect.zipRight(disks.overlay({ path: state.active, backing }), boot()),
    session,
    perform,
    closeLayer,
    finishWith: (layer) => {
      state.finished.push({ key: layer.key, text: layer.text, path: state.active })
    },
    sync: Effect.suspend(() =>
      state.session === undefined ? Effect.void : state.session.perform(GuestOperation.Sync())
    ),
    // An interrupted close would skip the finalizers after the one it hit (QEMU left running);
    // each of them has its own deadline.
    stop: (ended) =>
      Effect.uninterruptible(Scope.close(vmScope, Exit.isSuccess(ended) ? Exit.void : ended)),
  } satisfies VmChain
})
