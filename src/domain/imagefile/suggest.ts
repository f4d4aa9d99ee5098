/**
 * "Did you mean ...?": the closest of a few known words to a misspelt one.
 */

/** Edit distance counting a swap of two neighbours as one edit (`RNU` is 1 from `RUN`). */
export const editDistance = (a: string, b: string): number => {
  const rows: Array<Array<number>> = []
  for (let i = 0; i <= a.length; i++) {
    const row: Array<number> = [i]
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j)
        continue
      }
      const above = rows[i - 1]!
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(above[j]! + 1, row[j - 1]! + 1, above[j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, rows[i - 2]![j - 2]! + 1)
      }
      row.push(best)
    }
    rows.push(row)
  }
  return rows[a.length]![b.length]!
}

/**
 * The candidate closest to `word` (ignoring case), when it is close enough to be a likely typo:
 * one edit for short words, two for longer ones.
 */
export const closestWord = (
  word: string,
  candidates: ReadonlyArray<string>,
): string | undefined => {
  const wanted = word.toLowerCase()
  let best: { readonly candidate: string; readonly distance: number } | undefined
  for (const candidate of candidates) {
    const distance = editDistance(wanted, candidate.toLowerCase())
    const allowed = candidate.length <= 4 ? 1 : 2
    if (distance <= allowed && (best === undefined || distance < best.distance)) {
      best = { candidate, distance }
    }
  }
  return best?.candidate
}

/** How many leading characters `a` and `b` share. */
const sharedPrefix = (a: string, b: string): number => {
  let length = 0
  while (length < a.length && a[length] === b[length]) length++
  return length
}

/** A word without its leading dashes, in lower case: `--Name` reads as `name`. */
const bare = (word: string) => word.replace(/^-+/, "").toLowerCase()

/**
 * The candidate nearest to `word` (ignoring case and leading dashes) for an unknown option: of
 * those that begin with the same letter, the one that begins most like it, then the fewest edits
 * away.
 */
export const nearestWord = (
  word: string,
  candidates: ReadonlyArray<string>,
): string | undefined => {
  const wanted = bare(word)
  const ranked = candidates.map((candidate) => ({
    candidate,
    prefix: sharedPrefix(wanted, bare(candidate)),
    distance: editDistance(wanted, bare(candidate)),
  })).filter((ranking) => ranking.prefix > 0)
    .sort((a, b) => b.prefix - a.prefix || a.distance - b.distance)
  return ranked[0]?.candidate
}
