/** A Vagrant box's disk read out of a tar by the store's tar reader, fed in chunks of a size. */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { tarEntry, type TarProblem } from "../../src/layers/store/tar_entry.ts"
import { concatBytes as concat } from "../../src/domain/bytes.ts"
import { chunked } from "./bytes.ts"

const boxImage = tarEntry(
  (path) => path === "box.img" || path.endsWith("/box.img"),
  (problem: TarProblem) => problem,
)

/** The bytes of the archive's box.img, or the problem that stopped the reader. */
export const extractBoxImage = (archive: Uint8Array, size: number) =>
  Stream.runCollect(boxImage(chunked(archive, size))).pipe(
    Effect.map((chunks) => concat(Chunk.toArray(chunks))),
  )
