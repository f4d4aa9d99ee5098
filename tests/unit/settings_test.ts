/**
 * Where the store and the cache are, and the cache's size limit, as the environment says.
 */
import assert from "node:assert/strict"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import {
  cacheDirectorySetting,
  cacheSizeLimit,
  DEFAULT_CACHE_BYTES,
  imageBackendDirectory,
} from "../../src/app/settings.ts"

const withEnv = <A, E>(env: Record<string, string>, effect: Effect.Effect<A, E>) =>
  Effect.runSync(
    Effect.either(
      Effect.withConfigProvider(effect, ConfigProvider.fromMap(new Map(Object.entries(env)))),
    ),
  )

Deno.test("the store directory: --image-backend, else the variable, else XDG, else home", () => {
  const backend = (env: Record<string, string>, option = Option.none<string>()) =>
    withEnv(env, imageBackendDirectory(option))
  assert.deepEqual(
    backend({ TRANSIENT_IMAGE_BACKEND: "/env" }, Option.some("/flag")),
    Either.right("/flag"),
  )
  assert.deepEqual(backend({ TRANSIENT_IMAGE_BACKEND: "/env", HOME: "/h" }), Either.right("/env"))
  assert.deepEqual(
    backend({ TRANSIENT_IMAGE_BACKEND: "", XDG_DATA_HOME: "/xdg", HOME: "/h" }),
    Either.right("/xdg/transient/backend"),
  )
  assert.deepEqual(backend({ HOME: "/h" }), Either.right("/h/.local/share/transient/backend"))
})

Deno.test("the cache directory: the variable, else XDG, else home", () => {
  assert.deepEqual(
    withEnv({ TRANSIENT_CACHE_DIR: "/c", HOME: "/h" }, cacheDirectorySetting),
    Either.right("/c"),
  )
  assert.deepEqual(
    withEnv({ XDG_CACHE_HOME: "/x", HOME: "/h" }, cacheDirectorySetting),
    Either.right("/x/transient"),
  )
  assert.deepEqual(
    withEnv({ HOME: "/h" }, cacheDirectorySetting),
    Either.right("/h/.cache/transient"),
  )
})

Deno.test("the cache's size limit: a size, the default, or a one-line error naming the variable", () => {
  assert.deepEqual(withEnv({}, cacheSizeLimit), Either.right(DEFAULT_CACHE_BYTES))
  assert.deepEqual(
    withEnv({ TRANSIENT_CACHE_SIZE: "5G" }, cacheSizeLimit),
    Either.right(5 * 1024 ** 3),
  )
  const bad = withEnv({ TRANSIENT_CACHE_SIZE: "lots" }, cacheSizeLimit)
  assert.ok(Either.isLeft(bad))
  assert.equal(
    bad.left.message,
    "TRANSIENT_CACHE_SIZE must be a size such as 10G or 500MB (got 'lots')",
  )
})
