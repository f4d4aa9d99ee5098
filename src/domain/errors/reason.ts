/**
 * The words of what caused an error, shared by the errors of several concerns so that their
 * messages read alike.
 */

/** The OS's own words, for @effect/platform's errors (whose message repeats the call). */
const systemDescription = (cause: Error): string | undefined =>
  "_tag" in cause && cause._tag === "SystemError" && "description" in cause &&
    typeof cause.description === "string"
    ? cause.description
    : undefined

/** An error's text, with the text of the error under it when that adds something. */
export const reasonOf = (cause: unknown): string => {
  if (!(cause instanceof Error)) return String(cause)
  const description = systemDescription(cause)
  if (description !== undefined) return description
  const inner = cause.cause instanceof Error && !cause.message.includes(cause.cause.message)
    ? `: ${cause.cause.message}`
    : ""
  return `${cause.message}${inner}`
}

/** `HTTP 404 Not Found` when the server answered, else what went wrong. */
export const failureOf = (failure: {
  readonly status?: number | undefined
  readonly statusText?: string | undefined
  readonly detail?: string | undefined
  readonly cause?: unknown
}): string =>
  failure.status !== undefined
    ? `HTTP ${failure.status} ${failure.statusText ?? ""}`.trimEnd()
    : failure.detail ?? reasonOf(failure.cause)
