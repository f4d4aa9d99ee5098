/**
 * UEFI firmware for `transient run`: OVMF as Debian's `ovmf` package installs it, a read-only
 * code image and a template of the variable store that each run copies (the firmware writes its
 * variables there). /usr/share/qemu/firmware/*.json describes the same pairs.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import { UefiFirmwareMissing } from "../../domain/errors/vm.ts"

/** Where Debian's `ovmf` package installs OVMF. */
export const OVMF_DIRECTORY = "/usr/share/OVMF"

/** An OVMF build: its code and the variable store that goes with it (same flash size). */
export interface OvmfFiles {
  readonly code: string
  readonly vars: string
}

/**
 * The file names of the builds, best first: the 4 MiB flash layout (Debian's default since
 * bookworm), then the older 2 MiB one. The Secure Boot build needs SMM, and its variable store
 * has Microsoft's keys enrolled, so that signed boot loaders (shim) start.
 */
const CANDIDATES: Record<"plain" | "secureBoot", ReadonlyArray<OvmfFiles>> = {
  plain: [
    { code: "OVMF_CODE_4M.fd", vars: "OVMF_VARS_4M.fd" },
    { code: "OVMF_CODE.fd", vars: "OVMF_VARS.fd" },
  ],
  secureBoot: [
    { code: "OVMF_CODE_4M.secboot.fd", vars: "OVMF_VARS_4M.ms.fd" },
    { code: "OVMF_CODE.secboot.fd", vars: "OVMF_VARS.ms.fd" },
  ],
}

/** The first build in `directory` whose code and variable store are both there. */
export const locateOvmf = Effect.fn("locateOvmf")(function* (
  directory: string,
  options: { readonly secureBoot: boolean },
) {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const isFile = (file: string) =>
    fs.stat(file).pipe(
      Effect.map((info) => info.type === "File"),
      Effect.orElseSucceed(() => false),
    )
  for (const names of CANDIDATES[options.secureBoot ? "secureBoot" : "plain"]) {
    const files = { code: path.join(directory, names.code), vars: path.join(directory, names.vars) }
    if ((yield* isFile(files.code)) && (yield* isFile(files.vars))) return files as OvmfFiles
  }
  return yield* new UefiFirmwareMissing({ directory, secureBoot: options.secureBoot })
})
