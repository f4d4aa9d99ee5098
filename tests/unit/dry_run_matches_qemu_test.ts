/**
 * `build --dry-run` prints what the QEMU layer runs: for each Imagefile of testdata/, the lines
 * the dry run prints for the helper VM are the very commands the QEMU layer's session hands its
 * agent, in order.
 */
import assert from "node:assert/strict"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { build } from "../../src/app/build.ts"
import { commandFor, type GuestCommand, renderCommand } from "../../src/domain/guest/commands.ts"
import { GuestOperation } from "../../src/domain/guest/operation.ts"
import { BuildContextDirectory } from "../../src/layers/build_context_directory.ts"
import { BuildVmDryRun, LayerCacheDryRun } from "../../src/layers/dry_run.ts"
import {
  ContainerImagesMemory,
  MemoryContainerImages,
} from "../../src/layers/memory/container_images_memory.ts"
import { DiskImagesMemory } from "../../src/layers/memory/disk_images_memory.ts"
import { ImageStoreMemory } from "../../src/layers/memory/image_store_memory.ts"
import { ReporterMemory, ReportLog } from "../../src/layers/memory/reporter_memory.ts"
import { newTree } from "../../src/layers/memory/sim_fs.ts"
import { MemoryWorld } from "../../src/layers/memory/world.ts"
import type { AgentClient } from "../../src/layers/qemu/agent_client.ts"
import { makeSession } from "../../src/layers/qemu/vm_session.ts"
import { BuildVm } from "../../src/services/build_vm.ts"
import type { Reporter } from "../../src/services/reporter.ts"
import { runTest } from "../support/effect.ts"
import { defaultOptions, planOf } from "../fake/harness.ts"

const TESTDATA = new URL("../../testdata/", import.meta.url).pathname

/** A world whose store holds the base image that testdata/from-image builds FROM. */
const worldWithBase = () => {
  const world = new MemoryWorld()
  const path = `${world.storeRoot}/alpine-3.13`
  const tree = newTree()
  world.disks.set(path, {
    sizeBytes: 1 << 30,
    table: "mbr",
    partitions: [{
      layout: { number: 1, startSector: 2048, sizeSectors: 4096, type: "linux", bootable: true },
      filesystem: { fs: "ext4", options: [], tree },
    }],
  })
  world.images.set("alpine-3.13", path)
  return world
}

/** An agent that runs nothing and answers 0, keeping each command it was handed. */
const recordingAgent = (commands: Array<GuestCommand>): AgentClient => ({
  hello: { _tag: "hello", version: 1 },
  exec: (request) =>
    Effect.sync(() => {
      commands.push({ argv: request.argv, ...(request.env ? { env: request.env } : {}) })
      return 0
    }),
  shutdown: Effect.void,
})

const quietTerminal = {
  interactive: false,
  size: Effect.succeed({ columns: 80, rows: 24 }),
  raw: Effect.void,
  input: Stream.empty,
  write: () => Effect.void,
}

/** A guest that writes nothing: a snapshot's new file holds the disk the VM booted on. */
const keepDisk = (world: MemoryWorld, next: string) =>
  Effect.sync(() => {
    const booted = [...world.log].reverse().find((entry) => entry.op === "convert")
    const disk = booted?.op === "convert" ? world.disks.get(booted.to) : undefined
    world.disks.set(next, disk ?? [...world.disks.values()][0]!)
  })

const buildWith = (
  dir: string,
  vmIn: (world: MemoryWorld) => Layer.Layer<BuildVm, never, Reporter>,
) =>
  Effect.gen(function* () {
    const report = new ReportLog()
    const world = worldWithBase()
    const vm = vmIn(world)
    const text = yield* Effect.promise(() => Deno.readTextFile(`${dir}/Imagefile`))
    const layer = Layer.mergeAll(
      vm,
      DiskImagesMemory(world),
      ImageStoreMemory(world),
      LayerCacheDryRun,
      ContainerImagesMemory(new MemoryContainerImages()),
      BuildContextDirectory(dir).pipe(Layer.provide(NodeContext.layer)),
    ).pipe(Layer.provideMerge(ReporterMemory(report)))
    yield* build(planOf(text), defaultOptions("matched")).pipe(Effect.provide(layer))
    return report
  })

for (const name of ["alpine-gpt", "alpine-mbr", "scratch-xfs", "from-image"]) {
  Deno.test(`dry run of testdata/${name}: the commands the QEMU layer runs`, () =>
    runTest(Effect.gen(function* () {
      const dir = `${TESTDATA}${name}`
      const dryRun = yield* buildWith(dir, (world) =>
        // The dry run's VM writes no disk: its snapshots' new files are made here, for the
        // memory disks' sake.
        Layer.effect(
          BuildVm,
          Effect.map(BuildVm, (vm) => ({
            ...vm,
            boot: (options) =>
              Effect.map(vm.boot(options), (session) => ({
                ...session,
                snapshot: (next: string) =>
                  Effect.zipRight(session.snapshot(next), keepDisk(world, next)),
              })),
          })),
        ).pipe(Layer.provide(BuildVmDryRun)))
      const printed = dryRun.events.flatMap((event) =>
        event.event === "detail" && !event.text.startsWith("boot the helper VM") &&
          !/^(\(qmp\)|layer |image flattened)/.test(event.text)
          ? [event.text]
          : []
      )

      const ran: Array<GuestCommand> = []
      yield* buildWith(dir, (world) => {
        const snapshotDisk = (next: string) => keepDisk(world, next)
        const session = makeSession(recordingAgent(ran), {
          terminal: quietTerminal,
          socket: "/nonexistent",
          tty: "/dev/hvc0",
        }, { snapshotDisk })
        return Layer.succeed(BuildVm, {
          identity: "recording",
          boot: () => Effect.succeed(session),
        })
      })

      assert.ok(ran.length >= 3, `${name}: the build ran commands`)
      // The thaw after a snapshot runs beside the next step's commands (vm_session.ts): the
      // same commands, in the same order apart from where the thaws fall.
      const thaw = renderCommand(commandFor(GuestOperation.Thaw()))
      const rendered = ran.map(renderCommand)
      assert.deepEqual(
        printed.filter((line) => line !== thaw),
        rendered.filter((line) => line !== thaw),
      )
      assert.equal(
        printed.filter((line) => line === thaw).length,
        rendered.filter((line) => line === thaw).length,
      )
    })))
}
