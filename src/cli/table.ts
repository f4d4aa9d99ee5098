/**
 * Plain-text tables for the listing commands: columns padded to their widest cell, two spaces
 * apart, the last column unpadded.
 */
export const alignedTable = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const columns = Math.max(...rows.map((row) => row.length))
  const widths = Array.from(
    { length: columns },
    (_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0)),
  )
  return rows.map((row) =>
    row.map((cell, column) => column === row.length - 1 ? cell : cell.padEnd(widths[column]!))
      .join("  ")
  ).join("\n")
}
