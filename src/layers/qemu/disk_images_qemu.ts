/**
 * DiskImages over qemu-img: qcow2 files created, layered, flattened and inspected by the tool
 * QEMU itself reads them with.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { DiskImageError } from "../../domain/errors.ts"
import { type DiskImageInfo, DiskImages } from "../../services/disk_images.ts"
import { lastLines, missingToolReason, runTool } from "./qemu_process.ts"

/** Run qemu-img; a failure carries qemu-img's own explanation. */
const qemuImg = (operation: string, path: string, args: ReadonlyArray<string>) =>
  runTool(["qemu-img", ...args]).pipe(
    Effect.mapError(() =>
      new DiskImageError({ operation, path, reason: missingToolReason("qemu-img") })
    ),
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

/** An absolute path, as qemu-img records backing files relative to the overlay otherwise. */
const absolute = (path: string): string => path.startsWith("/") ? path : `${Deno.cwd()}/${path}`

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

export const DiskImagesQemu: Layer.Layer<DiskImages> = Layer.succeed(
  DiskImages,
  DiskImages.of({
    create: Effect.fn("DiskImages.create")(function* ({ path, sizeBytes }) {
      yield* qemuImg("create", path, ["create", "-q", "-f", "qcow2", path, String(sizeBytes)])
    }),
    overlay: Effect.fn("DiskImages.overlay")(function* ({ path, backing }) {
      yield* qemuImg("create an overlay", path, [
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        absolute(backing),
        "-F",
        "qcow2",
        path,
      ])
    }),
    convert: Effect.fn("DiskImages.convert")(function* ({ from, to, fromFormat }) {
      yield* qemuImg("convert", from, [
        "convert",
        ...(fromFormat === undefined ? [] : ["-f", fromFormat]),
        "-O",
        "qcow2",
        from,
        to,
      ])
    }),
    info: Effect.fn("DiskImages.info")(function* (path) {
      // --force-share: listing must work while a running VM holds the image open.
      const result = yield* qemuImg("inspect", path, [
        "info",
        "--force-share",
        "--output=json",
        path,
      ])
      return yield* parseInfo(path, result.stdout)
    }),
  }),
)
