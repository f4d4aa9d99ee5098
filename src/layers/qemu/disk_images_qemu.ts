/**
 * DiskImages over qemu-img: qcow2 files created, layered, flattened and inspected by the tool
 * QEMU itself reads them with.
 */
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { DiskImageError } from "../../domain/errors/store.ts"
import { convertArgv, overlayArgv } from "../../domain/export_format.ts"
import { detectFirmware, FIRMWARE_HEAD_BYTES } from "../../domain/firmware.ts"
import { PROBE_BYTES, standaloneQcow2Size } from "../../domain/image_format.ts"
import { type DiskImageInfo, DiskImages } from "../../services/disk_images.ts"
import { lastLines, runTool, type RunToolOptions } from "../host_process.ts"

/**
 * A reader of `qemu-img -p`'s meter (`    (42.17/100%)` and a carriage return, repeated): fed the
 * output as it comes, in pieces cut anywhere, it gives the last fraction done (0 to 1) that each
 * piece completes, if any.
 */
export const progressMeter = () => {
  let pending = ""
  return (text: string): number | undefined => {
    pending += text
    const marks = [...pending.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)]
    const last = marks.at(-1)
    if (last === undefined) {
      pending = pending.slice(-32)
      return undefined
    }
    pending = pending.slice(last.index + last[0].length)
    return Math.min(1, Number(last[1]) / 100)
  }
}

/** Run qemu-img; a failure carries qemu-img's own explanation. */
const qemuImg = (
  operation: string,
  path: string,
  args: ReadonlyArray<string>,
  options: RunToolOptions = {},
) =>
  runTool(["qemu-img", ...args], options).pipe(
    Effect.mapError((missing) => new DiskImageError({ operation, path, reason: missing.message })),
    Effect.filterOrFail(
      (result) => result.code === 0,
      (result) =>
        new DiskImageError({
          operation,
          path,
          reason: lastLines(result.stderr.replace(/^qemu-img: /gm, ""), 3).join("; ") ||
            `qemu-img exited with status ${result.code}`,
        }),
    ),
  )

interface QemuImgInfo {
  readonly filename: string
  readonly format: string
  readonly "virtual-size": number
  readonly "actual-size"?: number
  readonly "full-backing-filename"?: string
  readonly "backing-filename"?: string
}

const parseInfo = (path: string, json: string): Effect.Effect<DiskImageInfo, DiskImageError> =>
  Effect.try({
    try: () => {
      const info = JSON.parse(json) as QemuImgInfo
      if (typeof info.format !== "string" || typeof info["virtual-size"] !== "number") {
        throw new Error("no format or virtual size")
      }
      const backing = info["full-backing-filename"] ?? info["backing-filename"]
      return {
        path,
        format: info.format,
        virtualSize: info["virtual-size"],
        actualSize: info["actual-size"] ?? 0,
        ...(backing === undefined ? {} : { backingFile: backing }),
      }
    },
    catch: (error) =>
      new DiskImageError({
        operation: "inspect",
        path,
        reason: `qemu-img info gave unreadable output (${String(error)})`,
      }),
  })

/** `qemu-img check`: leaked clusters pass, corruptions fail, counted when qemu-img says. */
const checkImage = Effect.fn("DiskImages.check")(function* (path: string) {
  const result = yield* runTool([
    "qemu-img",
    "check",
    "--force-share",
    "--output=json",
    // The file alone, as qcow2, never its backing file: a layer is checked before its parent
    // is beside it, and nothing but the file itself is read.
    `json:${
      JSON.stringify({ driver: "qcow2", file: { driver: "file", filename: path }, backing: null })
    }`,
  ]).pipe(
    Effect.mapError((missing) =>
      new DiskImageError({ operation: "check", path, reason: missing.message })
    ),
  )
  // 0: clean, 3: only leaked clusters; 2: corruptions, 1: the check itself failed.
  if (result.code === 0 || result.code === 3) return
  const counts = Effect.try(() => JSON.parse(result.stdout) as { corruptions?: number })
  const { corruptions } = yield* Effect.orElseSucceed(
    counts,
    (): { corruptions?: number } => ({}),
  )
  return yield* new DiskImageError({
    operation: "check",
    path,
    reason: corruptions
      ? `it is damaged or incomplete (${corruptions} corruptions)`
      : lastLines(result.stderr.replace(/^qemu-img: /gm, ""), 2).join("; ") ||
        `qemu-img check exited with status ${result.code}`,
  })
})

export const DiskImagesQemu: Layer.Layer<
  DiskImages,
  never,
  CommandExecutor.CommandExecutor | FileSystem.FileSystem | Path.Path
> = Layer.effect(
  DiskImages,
  Effect.gen(function* () {
    const executor = yield* CommandExecutor.CommandExecutor
    const fs = yield* FileSystem.FileSystem
    const paths = yield* Path.Path
    const run = (
      operation: string,
      target: string,
      args: ReadonlyArray<string>,
      options?: RunToolOptions,
    ) =>
      qemuImg(operation, target, args, options).pipe(
        Effect.provideService(CommandExecutor.CommandExecutor, executor),
      )
    const standaloneInfo = (path: string) =>
      Effect.gen(function* () {
        const file = yield* fs.open(path, { flag: "r" })
        const head = yield* file.readAlloc(PROBE_BYTES)
        const virtualSize = Option.map(head, standaloneQcow2Size).pipe(Option.getOrUndefined)
        if (virtualSize === undefined) return undefined
        const stat = yield* file.stat
        return {
          path,
          format: "qcow2",
          virtualSize,
          actualSize: Option.getOrElse(stat.blocks, () => 0) * 512,
        } satisfies DiskImageInfo
      }).pipe(
        Effect.scoped,
        // Whatever the header read cannot tell, qemu-img will (and say why it cannot).
        Effect.orElseSucceed(() => undefined),
      )
    return DiskImages.of({
      create: Effect.fn("DiskImages.create")(function* ({ path, sizeBytes }) {
        yield* run("create", path, ["create", "-q", "-f", "qcow2", path, String(sizeBytes)])
      }),
      overlay: Effect.fn("DiskImages.overlay")(function* ({ path, backing, sizeBytes }) {
        yield* run(
          "create an overlay",
          path,
          overlayArgv({
            path,
            backing: paths.resolve(backing),
            ...(sizeBytes === undefined ? {} : { sizeBytes }),
          }),
        )
      }),
      rebase: Effect.fn("DiskImages.rebase")(function* ({ path, backing }) {
        yield* run("rebase", path, [
          "rebase",
          "-u",
          "-f",
          "qcow2",
          "-b",
          backing,
          "-F",
          "qcow2",
          path,
        ])
      }),
      convert: Effect.fn("DiskImages.convert")(function* ({
        from,
        to,
        fromFormat,
        target,
        onProgress,
      }) {
        const meter = progressMeter()
        const onStdout = onProgress === undefined ? undefined : (text: string) => {
          const fraction = meter(text)
          return fraction === undefined ? Effect.void : onProgress(fraction)
        }
        const argv = convertArgv({
          from,
          to,
          target: target ?? { qemuFormat: "qcow2", options: [] },
          progress: onStdout !== undefined,
          ...(fromFormat === undefined ? {} : { fromFormat }),
        })
        yield* run("convert", from, argv, onStdout === undefined ? {} : { onStdout })
      }),
      // The host's zstd: multi-threaded and streaming.
      compress: Effect.fn("DiskImages.compress")(function* ({ from, to }) {
        yield* runTool(["zstd", "-q", "-3", "-T0", "-f", "-o", to, "--", from]).pipe(
          Effect.provideService(CommandExecutor.CommandExecutor, executor),
          Effect.mapError((missing) =>
            new DiskImageError({ operation: "compress", path: from, reason: missing.message })
          ),
          Effect.filterOrFail(
            (result) => result.code === 0,
            (result) =>
              new DiskImageError({
                operation: "compress",
                path: from,
                reason: lastLines(result.stderr, 1)[0] || `exit status ${result.code}`,
              }),
          ),
        )
      }),
      check: (path) =>
        checkImage(path).pipe(Effect.provideService(CommandExecutor.CommandExecutor, executor)),
      // The disk's first bytes, as the guest sees them, through a throw-away raw file.
      firmware: Effect.fn("DiskImages.firmware")(function* (path) {
        const head = yield* Effect.scoped(Effect.gen(function* () {
          const file = yield* fs.makeTempFileScoped({ prefix: "transient-head-" })
          yield* run("read the partition table of", path, [
            "dd",
            "-f",
            "qcow2",
            "-O",
            "raw",
            `bs=${FIRMWARE_HEAD_BYTES}`,
            "count=1",
            `if=${path}`,
            `of=${file}`,
          ])
          return yield* fs.readFile(file)
        })).pipe(
          Effect.catchTag("SystemError", "BadArgument", (error) =>
            new DiskImageError({
              operation: "read the partition table of",
              path,
              reason: error.message,
            })),
        )
        return detectFirmware(head)
      }),
      info: Effect.fn("DiskImages.info")(function* (path, format) {
        // A standalone qcow2 says its size in its header (the size on disk is its blocks, as
        // qemu-img counts them): no process for the common case.
        if (format === "qcow2") {
          const known = yield* standaloneInfo(path)
          if (known !== undefined) return known
        }
        // --force-share: listing must work while a running VM holds the image open.
        const result = yield* run("inspect", path, [
          "info",
          "--force-share",
          "--output=json",
          ...(format === undefined ? [] : ["-f", format]),
          path,
        ])
        return yield* parseInfo(path, result.stdout)
      }),
    })
  }),
)
