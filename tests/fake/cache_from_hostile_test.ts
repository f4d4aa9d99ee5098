/**
 * `--cache-from` over the real registry client (RegistryHttp) against a hostile registry on
 * 127.0.0.1 (tests/support/fake_registry.ts), the build on the simulated machine: a cache map
 * past its cap, or one that never comes, is a warning, and the build runs its steps itself.
 */
import assert from "node:assert/strict"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { build } from "../../src/app/build.ts"
import { makeRegistryHttp } from "../../src/layers/registry/registry_http.ts"
import { Registry } from "../../src/services/registry.ts"
import { startFakeRegistry } from "../support/fake_registry.ts"
import { defaultOptions, type Harness, harness, planOf, withCacheFrom } from "./harness.ts"

const IMAGEFILE = [
  "FROM scratch",
  "DISK 1 GB GPT",
  "PARTITION 1 FORMAT ext4 MOUNT /",
  "RUN one",
].join("\n") + "\n"

/** The registry client as the CLI makes it, plain HTTP, silent reads given up after 1 s. */
const registryHttp = Layer.effect(
  Registry,
  makeRegistryHttp({
    plainHttp: true,
    insecure: [],
    credentials: {},
    timeout: Duration.seconds(1),
  }),
)

/** Build IMAGEFILE on `h`'s machine with `--cache-from reference`. */
const buildFrom = async (h: Harness, reference: string) => {
  const exit = await Effect.runPromiseExit(
    build(planOf(IMAGEFILE), defaultOptions("web", { force: true })).pipe(
      Effect.provide(withCacheFrom(h, [reference], registryHttp)),
    ),
  )
  assert.ok(Exit.isSuccess(exit), String(exit))
}

const warnings = (h: Harness) =>
  h.report.events.flatMap((event) => event.event === "warning" ? [event.message] : [])

const cases = [
  {
    name: "a cache map sent without a length past its cap",
    hostile: { unannouncedManifestBytes: 64 * 1024 * 1024 },
    reason: "failed to fetch the manifest of {ref}: " +
      "a manifest sent without a length ran past the 4 MiB limit",
  },
  {
    name: "a cache map that never comes",
    hostile: { silentManifests: true },
    reason: "went silent when asked to fetch the manifest of {ref}: no answer for 1 s " +
      "(TRANSIENT_NETWORK_TIMEOUT sets how long to wait)",
  },
] as const

for (const { name, hostile, reason } of cases) {
  Deno.test(`--cache-from: ${name} is a warning, and the build runs its steps`, async () => {
    const registry = startFakeRegistry()
    try {
      Object.assign(registry.hostile, hostile)
      const reference = `${registry.host}/team/cache:main`
      const h = harness()
      const started = performance.now()
      await buildFrom(h, reference)
      assert.ok(performance.now() - started < 15_000, "the build waited too long for the map")
      assert.deepEqual(warnings(h), [
        `The build cache ${reference} was not used: Registry ${registry.host} ` +
        reason.replace("{ref}", reference),
      ])
      assert.equal(h.world.log.filter((entry) => entry.op === "boot").length, 1, "built here")
    } finally {
      await registry.close()
    }
  })
}
