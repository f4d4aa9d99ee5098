/**
 * Where the members of a tar archive are, found by reading its headers only: each header is read
 * at its offset and the member's contents are skipped, so an archive of gigabytes costs one read
 * of 512 bytes per member. The members are then read in place, by offset, never extracted.
 */
import * as Effect from "effect/Effect"
import { memberName } from "../../domain/container_image.ts"
import {
  checksumHolds,
  headerNumber,
  headerPath,
  headerText,
  paddedSize,
  TAR_BLOCK as BLOCK,
} from "../../domain/tar_header.ts"
import { paxRecords } from "../store/tar_entry.ts"

/** The longest long-name or pax record read: real ones are a few hundred bytes. */
const MAX_RECORD_BYTES = 1024 * 1024

export interface TarMember {
  /** Where its contents start in the archive. */
  readonly offset: number
  readonly size: number
  /** The tar type flag: `0` a file, `2` a symlink, `5` a directory... */
  readonly type: string
  /** A symlink's or hardlink's target. */
  readonly linkName: string
}

/**
 * The archive's members by name (without `./`; the last of a name wins, as tar extracts), or a
 * phrase saying why the archive cannot be indexed. `readAt` returns up to `length` bytes at
 * `offset` (fewer only at the end of the archive).
 */
export const indexTarMembers = <E>(
  readAt: (offset: number, length: number) => Effect.Effect<Uint8Array, E>,
  archiveSize: number,
): Effect.Effect<Map<string, TarMember>, E | string> =>
  Effect.gen(function* () {
    const members = new Map<string, TarMember>()
    let offset = 0
    let longName: string | undefined
    let longLink: string | undefined
    let pax = new Map<string, string>()
    while (offset + BLOCK <= archiveSize) {
      const header = yield* readAt(offset, BLOCK)
      if (header.length < BLOCK) return yield* Effect.fail("it ends inside a header")
      if (header.every((byte) => byte === 0)) return members
      if (!checksumHolds(header)) {
        return yield* Effect.fail(`it has no valid tar header at offset ${offset}`)
      }
      const type = String.fromCharCode(header[156] ?? 0)
      const size = pax.has("size") ? Number(pax.get("size")) : headerNumber(header, 124, 12)
      if (!Number.isSafeInteger(size) || size < 0) {
        return yield* Effect.fail(`its member at offset ${offset} has no valid size`)
      }
      const contents = offset + BLOCK
      if (contents + size > archiveSize) {
        return yield* Effect.fail(`it ends inside the member at offset ${offset}`)
      }
      offset = contents + paddedSize(size)
      if (type === "L" || type === "K" || type === "x") {
        // Read into memory whole: a header may not make that unbounded.
        if (size > MAX_RECORD_BYTES) {
          return yield* Effect.fail(`it has a header record of ${size} bytes`)
        }
        const record = yield* readAt(contents, size)
        if (type === "x") pax = paxRecords(record)
        else if (type === "L") longName = headerText(record, 0, size)
        else longLink = headerText(record, 0, size)
        continue
      }
      // A global pax header (`g`) says nothing of one member.
      if (type === "g") continue
      const name = pax.get("path") ?? longName ?? headerPath(header)
      const linkName = pax.get("linkpath") ?? longLink ?? headerText(header, 157, 100)
      members.set(memberName(name), { offset: contents, size, type, linkName })
      longName = undefined
      longLink = undefined
      pax = new Map()
    }
    // An archive may end without its zero blocks.
    if (offset !== archiveSize) return yield* Effect.fail("it ends inside a header")
    return members
  })

/** Whether `member` is a regular file, whose contents are its bytes. */
export const isRegularMember = (member: TarMember): boolean =>
  member.type === "0" || member.type === "\0" || member.type === "7"
