/**
 * Auth files are decoded by Schema: an entry of the wrong shape is passed over, not the file, and
 * a file that is not JSON is passed over for the next one.
 */
import assert from "node:assert/strict"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import { findCredential } from "../../src/layers/registry/credentials.ts"
import { runTest } from "../support/effect.ts"

Deno.test("a malformed auth entry or file is passed over, the good ones still serve", async () => {
  const directory = await Deno.makeTempDir()
  try {
    const broken = `${directory}/broken.json`
    await Deno.writeTextFile(broken, "{ not json")
    const docker = `${directory}/docker`
    await Deno.mkdir(docker)
    await Deno.writeTextFile(
      `${docker}/config.json`,
      JSON.stringify({
        auths: {
          "odd.example": { auth: 42, username: ["x"] },
          "good.example": { auth: btoa("eve:pw"), extra: true },
        },
        credHelpers: { "good.example": 7 },
      }),
    )
    const find = (registry: string) =>
      runTest(
        findCredential(registry, { REGISTRY_AUTH_FILE: broken, DOCKER_CONFIG: docker }).pipe(
          Effect.provide(NodeContext.layer),
        ),
      )
    const good = await find("good.example")
    assert.deepEqual(good.credential, {
      username: "eve",
      password: "pw",
      source: `${docker}/config.json`,
    })
    const odd = await find("odd.example")
    assert.equal(odd.credential, undefined)
    assert.deepEqual(odd.searched, [broken, `${docker}/config.json`])
  } finally {
    await Deno.remove(directory, { recursive: true })
  }
})
