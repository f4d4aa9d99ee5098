/** The plan's actions as guest operations: what a build performs and a dry run prints. */
import assert from "node:assert/strict"
import { actionOperations, resumeOperations } from "../../src/domain/guest/action_operations.ts"
import type { GuestSource } from "../../src/domain/guest/operation.ts"
import { analyzeImagefile } from "../../src/domain/imagefile/mod.ts"
import { type BuildPlan, planBuild } from "../../src/domain/plan.ts"

const plan = (text: string): BuildPlan => {
  const { imagefile, diagnostics } = analyzeImagefile(text, "Imagefile")
  assert.deepEqual(diagnostics.filter((d) => d.severity === "error"), [])
  return planBuild(imagefile)
}

const source = (name: string): GuestSource => ({ source: name, path: `ctx/${name}`, kind: "file" })

/** Each step's operations, by tag, with the source paths COPY and ADD hand the guest. */
const operationsOf = (built: BuildPlan) =>
  built.steps.map((step) =>
    step.actions.flatMap((action) =>
      actionOperations(action, source).map((operation) =>
        operation._tag === "CopyIn"
          ? `CopyIn ${operation.sources.map((s) => s.path).join(",")} ${operation.destination}`
          : operation._tag === "Extract"
          ? `Extract ${operation.source.path} ${operation.destination}`
          : operation._tag
      )
    )
  )

Deno.test("a scratch plan: the disk partitioned, formatted and mounted; RUN and INSPECT chrooted", () => {
  const built = plan(
    "FROM scratch\nDISK 1 GB GPT\nPARTITION 1 FORMAT ext4 MOUNT /\n" +
      "COPY a b /opt/\nADD x.tar y.tar /srv\nRUN true\nINSPECT\n",
  )
  assert.deepEqual(operationsOf(built), [
    [],
    ["PartitionDisk"],
    ["Format", "MountPartitions"],
    ["CopyIn ctx/a,ctx/b /opt/"],
    ["Extract ctx/x.tar /srv", "Extract ctx/y.tar /srv"],
    ["PrepareChroot", "Run"],
    ["PrepareChroot", "OpenShell"],
  ])
  assert.deepEqual(resumeOperations(built).map((operation) => operation._tag), [
    "MountPartitions",
  ])
})

Deno.test("FROM an image: its root is found, first and again on resuming over a cached layer", () => {
  const built = plan("FROM alpine-3.13\nRUN echo hi\n")
  assert.deepEqual(operationsOf(built), [["DiscoverRoot"], ["PrepareChroot", "Run"]])
  assert.deepEqual(resumeOperations(built).map((operation) => operation._tag), ["DiscoverRoot"])
})
