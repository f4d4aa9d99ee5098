/**
 * Names as messages show them: a name is user text, and a control character in it would play
 * tricks on the terminal that prints the message.
 */

/** A name as an error message may show it: control characters as escapes. */
export const visibleName = (name: string): string =>
  name.replace(
    // deno-lint-ignore no-control-regex -- control characters are what is escaped.
    /[\x00-\x1f\x7f]/g,
    (char) => `\\x${char.charCodeAt(0).toString(16).padStart(2, "0")}`,
  )
