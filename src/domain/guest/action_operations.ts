/**
 * What each action of a plan asks of the helper VM: its guest operations, in order. The build
 * performs them (src/app/build/perform_action.ts) and hands each to its VM, whose command
 * (./commands.ts) the QEMU session runs and the dry run prints (src/layers/dry_run.ts): one
 * mapping, so a dry run shows what a build runs. Pure.
 */
import { isContainerSource } from "../container_source.ts"
import type { Action, BuildPlan } from "../plan.ts"
import { GuestOperation, type GuestSource } from "./operation.ts"

/** INSPECT's shell: its console and size are the session's to know. */
export interface OpenShell {
  readonly _tag: "OpenShell"
}

/**
 * ADD of a container image: its layers, known once the source is resolved, each applied with
 * the host streaming it (GuestOperation.ApplyLayer).
 */
export interface AddContainerImage {
  readonly _tag: "AddContainerImage"
  /** As the Imagefile wrote it. */
  readonly source: string
  readonly destination: string
}

export type ActionOperation =
  | Exclude<GuestOperation, { readonly _tag: "Shell" | "ApplyLayer" }>
  | OpenShell
  | AddContainerImage

/** The operations of `action`; `source` gives a COPY/ADD source as the build context resolved it. */
export const actionOperations = (
  action: Action,
  source: (name: string) => GuestSource,
): ReadonlyArray<ActionOperation> => {
  switch (action._tag) {
    case "CreateDisk":
      return [GuestOperation.PartitionDisk({ layout: action.layout })]
    case "UseBase":
      return [GuestOperation.DiscoverRoot()]
    case "Format":
      return [GuestOperation.Format(action.format)]
    case "Mount":
      return [GuestOperation.MountPartitions({ mounts: action.mounts })]
    case "Copy":
      return [GuestOperation.CopyIn({
        sources: action.sources.map(source),
        destination: action.destination,
      })]
    case "Add":
      return action.sources.map((name): ActionOperation =>
        isContainerSource(name)
          ? { _tag: "AddContainerImage", source: name, destination: action.destination }
          : GuestOperation.Extract({ source: source(name), destination: action.destination })
      )
    // RUN and INSPECT work in the chroot; a session prepares it once.
    case "Run":
      return [GuestOperation.PrepareChroot(), GuestOperation.Run({ command: action.command })]
    case "Inspect":
      return [GuestOperation.PrepareChroot(), { _tag: "OpenShell" }]
  }
}

/**
 * What brings the build root back on a VM booted over cached layers: the base image's root
 * found, or the scratch disk's partitions mounted as the plan's first mount did.
 */
export const resumeOperations = (
  plan: BuildPlan,
): ReadonlyArray<
  Extract<GuestOperation, { readonly _tag: "DiscoverRoot" | "MountPartitions" }>
> => {
  if (plan.base._tag === "Image") return [GuestOperation.DiscoverRoot()]
  const mounts =
    plan.steps.flatMap((step) =>
      step.actions.flatMap((action) => action._tag === "Mount" ? [action.mounts] : [])
    )[0]
  return mounts === undefined ? [] : [GuestOperation.MountPartitions({ mounts })]
}
