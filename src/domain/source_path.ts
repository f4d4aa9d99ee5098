/**
 * Lexical path rules, shared by validation, the build contexts and the simulated guest: a
 * COPY/ADD source is relative and stays inside BUILD_DIR; an image path is absolute.
 */

/** `/a//b/./c/` -> `/a/b/c`; `..` climbs but never above `/`. */
export const normalizeAbsolute = (path: string): string => {
  const parts: Array<string> = []
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue
    if (part === "..") parts.pop()
    else parts.push(part)
  }
  return "/" + parts.join("/")
}

/** The source normalised relative to BUILD_DIR (`.` for BUILD_DIR itself), or why it is refused. */
export const confineSource = (
  source: string,
): { readonly path: string } | { readonly refused: string } => {
  if (source.startsWith("/")) return { refused: "absolute paths are not allowed" }
  const parts: Array<string> = []
  for (const part of source.split("/")) {
    if (part === "" || part === ".") continue
    if (part === "..") {
      if (parts.length === 0) return { refused: "'..' leaves the build directory" }
      parts.pop()
    } else parts.push(part)
  }
  return { path: parts.length === 0 ? "." : parts.join("/") }
}
