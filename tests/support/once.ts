/**
 * A fixture that several tests of one file share: made by whichever of them runs first, so each
 * test can also run alone (`--filter`) without relying on another test's output.
 */
export const once = <A>(make: () => Promise<A>): () => Promise<A> => {
  let made: Promise<A> | undefined
  return () => made ??= make()
}
