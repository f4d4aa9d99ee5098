/**
 * A session's applyLayer over an agent: the layer is the command's stdin, and when the layer
 * itself fails (a digest that does not match), that failure is the one reported, not the
 * guest's view of a cut stream.
 */
import assert from "node:assert/strict"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { AGENT_BUILTIN } from "../../src/domain/guest/builtins.ts"
import { GuestCommandFailed } from "../../src/domain/errors/vm.ts"
import { GuestOperation } from "../../src/domain/guest/operation.ts"
import type { AgentClient } from "../../src/layers/qemu/agent_client.ts"
import { makeSession } from "../../src/layers/qemu/vm_session.ts"
import { runTest } from "../support/effect.ts"

class LayerUnreadable extends Data.TaggedError("LayerUnreadable")<{ readonly digest: string }> {}

/** An agent whose command reads all its stdin, as the real agent client feeds it, then exits. */
const readingAgent = (exitCode: number) => {
  const seen = { argv: [] as ReadonlyArray<string>, input: [] as Array<string> }
  const client: AgentClient = {
    hello: { _tag: "hello", version: 1 },
    exec: (request) =>
      Effect.gen(function* () {
        seen.argv = request.argv
        if (request.stdin !== undefined) {
          // A failing input fails the exec, as AgentClient's does.
          yield* Stream.runForEach(
            request.stdin,
            (chunk) => Effect.sync(() => seen.input.push(new TextDecoder().decode(chunk))),
          )
        }
        return exitCode
      }),
    shutdown: Effect.void,
  }
  return { seen, client }
}

const terminal = {
  interactive: false,
  size: Effect.succeed({ columns: 80, rows: 24 }),
  raw: Effect.void,
  input: Stream.empty,
  write: () => Effect.void,
}

const operation = GuestOperation.ApplyLayer({
  source: "docker://example.org/base:1",
  layer: "sha256:" + "1".repeat(64),
  destination: "/srv",
})

const sessionOver = (client: AgentClient) =>
  makeSession(client, { terminal, socket: "/nonexistent", tty: "/dev/hvc0" })

Deno.test("applyLayer runs the agent's apply-layer on the destination, the layer as its stdin", () =>
  runTest(Effect.gen(function* () {
    const { seen, client } = readingAgent(0)
    yield* sessionOver(client).applyLayer(
      operation,
      Stream.make(...[
        "first ",
        "second",
      ].map((text) => new TextEncoder().encode(text))),
    )
    assert.deepEqual(seen.argv, [AGENT_BUILTIN.applyLayer, "/mnt/root/srv"])
    assert.equal(seen.input.join(""), "first second")
  })))

Deno.test("a layer that fails as it streams is the failure, whatever the guest made of it", () =>
  runTest(Effect.gen(function* () {
    const { seen, client } = readingAgent(137)
    const layer = Stream.concat(
      Stream.make(new TextEncoder().encode("partial")),
      Stream.fail(new LayerUnreadable({ digest: operation.layer })),
    )
    const error = yield* Effect.flip(sessionOver(client).applyLayer(operation, layer))
    assert.ok(error instanceof LayerUnreadable, String(error))
    assert.equal(error.digest, operation.layer)
    assert.equal(seen.input.join(""), "partial")
  })))

Deno.test("a layer the guest refuses fails with what the guest said", () =>
  runTest(Effect.gen(function* () {
    const { client } = readingAgent(1)
    const error = yield* Effect.flip(
      sessionOver(client).applyLayer(operation, Stream.make(new Uint8Array([1]))),
    )
    assert.ok(error instanceof GuestCommandFailed, String(error))
    assert.match(error.message, /add layer sha256:1{64} of docker:\/\/example\.org\/base:1/)
  })))
