/**
 * The agent's apply-layer builtin, with the agent as a child process speaking frames on its
 * stdin/stdout: a layer sent as stdin frames is applied; a signal or a bad entry ends it.
 */
import assert from "node:assert/strict"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { encodeDataFrame, encodeJsonFrame } from "../../src/domain/guest/frame.ts"
import { AGENT_BUILTIN } from "../../src/domain/guest/builtins.ts"
import { connectAgent } from "../../src/layers/qemu/agent_client.ts"
import { collector } from "../support/agent_calls.ts"
import { runTest } from "../support/effect.ts"
import { rawAgent, spawnAgent, stopAgent } from "../support/raw_agent.ts"
import { systemProgram } from "../support/system_program.ts"

// Owners 0:0 in the layers need root; elsewhere these tests are ignored.
const ignore = Deno.uid() !== 0

const makeTar = new URL("../support/make_layer_tar.py", import.meta.url).pathname

/** A layer tar by Python's tarfile, as bytes. */
const layerTar = (dir: string, entries: ReadonlyArray<Record<string, unknown>>): Uint8Array => {
  Deno.writeTextFileSync(`${dir}/layer.json`, JSON.stringify(entries))
  const { success, stderr } = new Deno.Command(systemProgram("python3"), {
    args: [makeTar, "pax", `${dir}/layer.tar`, `${dir}/layer.json`],
  }).outputSync()
  assert.ok(success, new TextDecoder().decode(stderr))
  return Deno.readFileSync(`${dir}/layer.tar`)
}

const withTempDir = async (use: (dir: string) => Promise<void>): Promise<void> => {
  const dir = Deno.makeTempDirSync({ prefix: "agent-apply-layer-" })
  try {
    await use(dir)
  } finally {
    Deno.removeSync(dir, { recursive: true })
  }
}

Deno.test({
  name: "agent: apply-layer applies a layer sent as stdin frames and prints a summary",
  ignore,
  fn: () =>
    withTempDir((dir) => {
      const root = `${dir}/root`
      Deno.mkdirSync(root)
      const tar = layerTar(dir, [
        { name: "etc/", type: "dir" },
        { name: "etc/hostname", data: "layered\n", mode: 0o640, uid: 7, gid: 8 },
        { name: "etc/link", type: "symlink", linkname: "hostname" },
      ])
      // Awkward pieces: headers and contents split across frames.
      const pieces = Array.from(
        { length: Math.ceil(tar.length / 700) },
        (_, i) => tar.slice(i * 700, (i + 1) * 700),
      )
      return runTest(Effect.scoped(Effect.gen(function* () {
        const child = spawnAgent()
        yield* Effect.addFinalizer(() => Effect.promise(() => stopAgent(child)))
        const client = yield* connectAgent(
          { readable: child.stdout, writable: child.stdin },
          { helloTimeout: "30 seconds" },
        )
        const out = collector()
        const code = yield* client.exec({
          argv: [AGENT_BUILTIN.applyLayer, root],
          stdin: Stream.fromIterable(pieces),
          ...out,
        })
        assert.equal(code, 0, out.text("stderr"))
        assert.equal(
          out.text("stdout"),
          `applied 3 entries, 8 bytes, 0 whiteouts onto ${root}\n`,
        )
        const info = Deno.lstatSync(`${root}/etc/hostname`)
        assert.deepEqual([info.mode! & 0o7777, info.uid, info.gid], [0o640, 7, 8])
        assert.equal(Deno.readTextFileSync(`${root}/etc/link`), "layered\n")
        const usage = collector()
        assert.equal(yield* client.exec({ argv: [AGENT_BUILTIN.applyLayer], ...usage }), 2)
        assert.match(usage.text("stderr"), /usage: transient-agent:apply-layer ROOT/)
      })))
    }),
})

Deno.test({
  name: "agent: a SIGKILL or SIGTERM signal ends apply-layer mid-stream with 128+N",
  ignore,
  fn: () =>
    withTempDir(async (dir) => {
      const root = `${dir}/root`
      Deno.mkdirSync(root)
      // Only the start of a big file: the rest never comes.
      const tar = layerTar(dir, [{ name: "big", data: "x".repeat(100_000) }]).slice(0, 4096)
      const agent = rawAgent()
      try {
        assert.equal((JSON.parse((await agent.next() as { text: string }).text))._tag, "hello")
        for (const [id, signal, code] of [[7, "SIGKILL", 137], [8, "SIGTERM", 143]] as const) {
          Deno.mkdirSync(`${root}/${id}`)
          await agent.send(
            encodeJsonFrame({
              _tag: "exec",
              id,
              argv: [AGENT_BUILTIN.applyLayer, `${root}/${id}`],
              stdin: true,
            }),
          )
          await agent.send(encodeDataFrame("stdin", id, tar))
          const started = performance.now()
          await agent.send(encodeJsonFrame({ _tag: "signal", id, signal }))
          const exit = await agent.exitOf(id)
          assert.equal(exit.code, code)
          assert.match(exit.stderr, new RegExp(`stopped by ${signal}`))
          assert.ok(performance.now() - started < 3000, "the signal ended it at once")
          // Input after the end is dropped, and the agent carries on.
          await agent.send(encodeDataFrame("stdin", id, tar))
        }
        await agent.send(encodeJsonFrame({ _tag: "exec", id: 9, argv: ["true"] }))
        assert.equal((await agent.exitOf(9)).code, 0)
      } finally {
        await agent.stop()
      }
    }),
})

Deno.test({
  name: "agent: a refused entry ends apply-layer with 1 and the reason, input still coming",
  ignore,
  fn: () =>
    withTempDir(async (dir) => {
      const root = `${dir}/root`
      Deno.mkdirSync(root)
      const tar = layerTar(dir, [{ name: "../escaped", data: "out\n" }, {
        name: "later",
        data: "y".repeat(200_000),
      }])
      const agent = rawAgent()
      try {
        await agent.next()
        await agent.send(
          encodeJsonFrame({
            _tag: "exec",
            id: 3,
            argv: [AGENT_BUILTIN.applyLayer, root],
            stdin: true,
          }),
        )
        // Frames keep coming after the failure: dropped, not blocking the agent.
        for (let offset = 0; offset < tar.length; offset += 16_384) {
          await agent.send(encodeDataFrame("stdin", 3, tar.slice(offset, offset + 16_384)))
        }
        await agent.send(encodeDataFrame("stdin", 3, new Uint8Array(0)))
        const exit = await agent.exitOf(3)
        assert.equal(exit.code, 1)
        assert.match(exit.stderr, /layer entry '\.\.\/escaped' has a '\.\.' component/)
        assert.throws(() => Deno.lstatSync(`${dir}/escaped`), Deno.errors.NotFound)
        await agent.send(encodeJsonFrame({ _tag: "exec", id: 4, argv: ["true"] }))
        assert.equal((await agent.exitOf(4)).code, 0)
      } finally {
        await agent.stop()
      }
    }),
})
