/**
 * The guest agent driven by AgentClient, on the host without a VM: the agent runs as a child
 * process with the frames on its stdin/stdout, and runs the commands on this host.
 */
import assert from "node:assert/strict"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import {
  encodeDataFrame,
  encodeJsonFrame,
  type Payload,
  PROTOCOL_VERSION,
} from "../../src/domain/guest/frame.ts"
import { AGENT_BUILTIN } from "../../src/domain/guest/builtins.ts"
import { type AgentClient, connectAgent } from "../../src/layers/qemu/agent_client.ts"
import { collector, vmErrorOf } from "../support/agent_calls.ts"
import { runTest } from "../support/effect.ts"
import { rawAgent, spawnAgent as spawnRawAgent, stopAgent } from "../support/raw_agent.ts"

const spawnAgent = Effect.acquireRelease(
  Effect.sync(spawnRawAgent),
  (child) => Effect.promise(() => stopAgent(child)),
)

/** Run `use` against a fresh agent process. */
const withAgent = <A, E>(
  use: (client: AgentClient, child: Deno.ChildProcess) => Effect.Effect<A, E, Scope.Scope>,
) =>
  Effect.scoped(Effect.gen(function* () {
    const child = yield* spawnAgent
    const client = yield* connectAgent(
      { readable: child.stdout, writable: child.stdin },
      { helloTimeout: "30 seconds" },
    )
    return yield* use(client, child)
  }))

Deno.test("agent: hello, echo and exit statuses", () =>
  runTest(withAgent((client) =>
    Effect.gen(function* () {
      assert.equal(client.hello.version, PROTOCOL_VERSION)
      const out = collector()
      assert.equal(yield* client.exec({ argv: ["echo", "hello", "world"], ...out }), 0)
      assert.equal(out.text("stdout"), "hello world\n")
      assert.equal(yield* client.exec({ argv: ["sh", "-c", "exit 3"] }), 3)
      assert.equal(yield* client.exec({ argv: ["true"] }), 0)
      assert.equal(yield* client.exec({ argv: ["sh", "-c", "kill -TERM $$"] }), 128 + 15)
    })
  )))

Deno.test("agent: stdout and stderr stay apart, env and cwd apply", () =>
  runTest(withAgent((client) =>
    Effect.gen(function* () {
      const dir = Deno.makeTempDirSync()
      try {
        const out = collector()
        const code = yield* client.exec({
          argv: ["sh", "-c", 'echo "out $GREETING"; pwd; echo oops >&2; exit 1'],
          env: { GREETING: "hi there; $(not expanded)" },
          cwd: dir,
          ...out,
        })
        assert.equal(code, 1)
        assert.equal(
          out.text("stdout"),
          `out hi there; $(not expanded)\n${Deno.realPathSync(dir)}\n`,
        )
        assert.equal(out.text("stderr"), "oops\n")
      } finally {
        Deno.removeSync(dir)
      }
    })
  )))

Deno.test("agent: argv reaches the command verbatim, without a shell", () =>
  runTest(withAgent((client) =>
    Effect.gen(function* () {
      const out = collector()
      const args = ["$HOME", "a b", "'q'", "*", "; rm -rf /", ""]
      assert.equal(yield* client.exec({ argv: ["printf", "[%s]", ...args], ...out }), 0)
      assert.equal(out.text("stdout"), args.map((a) => `[${a}]`).join(""))
    })
  )))

Deno.test("agent: all 256 byte values round-trip exactly", () =>
  runTest(withAgent((client) =>
    Effect.gen(function* () {
      const file = Deno.makeTempFileSync()
      const data = new Uint8Array(256 * 1024).map((_, i) => (i * 7 + (i >> 8)) & 0xff)
      Deno.writeFileSync(file, data)
      try {
        const out = collector()
        assert.equal(yield* client.exec({ argv: ["cat", file], ...out }), 0)
        assert.deepStrictEqual(out.bytes("stdout"), data)
        // And back through stdin, split into awkward chunks.
        const echoed = collector()
        const cuts = [0, 1, 1000, 70_000, data.length]
        const stdin = Stream.fromIterable(
          cuts.slice(1).map((end, i) => data.subarray(cuts[i], end)),
        )
        assert.equal(yield* client.exec({ argv: ["cat"], stdin, ...echoed }), 0)
        assert.deepStrictEqual(echoed.bytes("stdout"), data)
      } finally {
        Deno.removeSync(file)
      }
    })
  )))

Deno.test("agent: a command that does not exist exits 127 and says so on stderr", () =>
  runTest(withAgent((client) =>
    Effect.gen(function* () {
      const out = collector()
      assert.equal(yield* client.exec({ argv: ["/nonexistent/tool", "x"], ...out }), 127)
      assert.match(out.text("stderr"), /\/nonexistent\/tool: command not found/)
      const notExecutable = Deno.makeTempFileSync()
      try {
        assert.equal(yield* client.exec({ argv: [notExecutable] }), 126)
      } finally {
        Deno.removeSync(notExecutable)
      }
      // A missing working directory is a refused request, not a missing command.
      const error = yield* vmErrorOf(client.exec({ argv: ["true"], cwd: "/nonexistent/dir" }))
      assert.match(error.message, /working directory \/nonexistent\/dir does not exist/)
      // The agent carries on.
      assert.equal(yield* client.exec({ argv: ["true"] }), 0)
    })
  )))

Deno.test("agent: freeze and thaw run in the agent and answer as execs do", () =>
  runTest(withAgent((client) =>
    Effect.gen(function* () {
      const out = collector()
      assert.equal(yield* client.exec({ argv: [AGENT_BUILTIN.freeze], ...out }), 2)
      assert.match(out.text("stderr"), /usage: transient-agent:freeze ROOT/)
      // No disk filesystem is mounted there: nothing to freeze, nothing to thaw.
      const root = Deno.makeTempDirSync()
      try {
        assert.equal(yield* client.exec({ argv: [AGENT_BUILTIN.freeze, root] }), 0)
        assert.equal(yield* client.exec({ argv: [AGENT_BUILTIN.thaw] }), 0)
      } finally {
        Deno.removeSync(root)
      }
      // The agent carries on with processes.
      assert.equal(yield* client.exec({ argv: ["true"] }), 0)
    })
  )))

Deno.test("agent: attach checks its arguments before it touches the clock or a disk", () =>
  runTest(withAgent((client) =>
    Effect.gen(function* () {
      // Only malformed calls here: a well-formed one would set this host's clock.
      for (
        const args of [[], ["now", "00", "/dev/sda"], ["1", "0g", "/dev/sda"], ["1", "00"]]
      ) {
        const out = collector()
        assert.equal(yield* client.exec({ argv: [AGENT_BUILTIN.attach, ...args], ...out }), 1)
        assert.match(out.text("stderr"), /usage: attach EPOCH_MS SEED_HEX DISK/)
      }
    })
  )))

Deno.test("agent: 100 MB of output streams through with bounded memory", () =>
  runTest(withAgent((client, child) =>
    Effect.gen(function* () {
      const total = 100 * 1024 * 1024
      let received = 0
      let nonZero = 0
      // Per isolate (the test runner may share the process): JS heap plus array buffers.
      const used = () => {
        const { heapUsed, external } = Deno.memoryUsage()
        return heapUsed + external
      }
      const baseline = used()
      let hostPeak = 0
      const started = performance.now()
      const code = yield* client.exec({
        argv: ["head", "-c", String(total), "/dev/zero"],
        onOutput: (_, chunk) =>
          Effect.sync(() => {
            received += chunk.length
            if (chunk[0] !== 0 || chunk[chunk.length - 1] !== 0) nonZero++
            if (received % (4 * 2 ** 20) < chunk.length) hostPeak = Math.max(hostPeak, used())
          }),
      })
      const seconds = (performance.now() - started) / 1000
      assert.equal(code, 0)
      assert.equal(received, total)
      assert.equal(nonZero, 0)
      const hostGrowth = (hostPeak - baseline) / 2 ** 20
      const agentPeak = Number(
        /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${child.pid}/status`))?.[1],
      ) / 1024
      const mib = total / 2 ** 20
      console.log(
        `${mib} MiB in ${seconds.toFixed(2)} s = ${(mib / seconds).toFixed(0)} MiB/s; ` +
          `host memory peak +${hostGrowth.toFixed(0)} MiB, agent peak RSS ${
            agentPeak.toFixed(0)
          } MiB`,
      )
      // Garbage awaiting collection levels off near 70 MiB however much flows (400 MiB: the
      // same); holding the output would take more than all of it.
      assert.ok(hostGrowth < 0.9 * mib, `host memory grew by ${hostGrowth} MiB`)
      assert.ok(agentPeak < 250, `agent peak RSS ${agentPeak} MiB`)
    })
  )))

Deno.test("agent: execs run concurrently and keep their output apart", () =>
  runTest(withAgent((client) =>
    Effect.gen(function* () {
      const dir = Deno.makeTempDirSync()
      try {
        const a = collector()
        const b = collector()
        // The first waits for a file only the second creates: run one after the other, they
        // would never finish.
        const codes = yield* Effect.all([
          client.exec({
            argv: [
              "sh",
              "-c",
              'until [ -e "$1" ]; do sleep 0.01; done; seq 1 2000; exit 4',
              "sh",
              `${dir}/go`,
            ],
            ...a,
          }),
          client.exec({ argv: ["sh", "-c", 'seq 5000 7000; touch "$1"', "sh", `${dir}/go`], ...b }),
        ], { concurrency: "unbounded" }).pipe(Effect.timeout("20 seconds"))
        assert.deepStrictEqual(codes, [4, 0])
        const seq = (from: number, to: number) =>
          Array.from({ length: to - from + 1 }, (_, i) => `${from + i}\n`).join("")
        assert.equal(a.text("stdout"), seq(1, 2000))
        assert.equal(b.text("stdout"), seq(5000, 7000))
      } finally {
        Deno.removeSync(dir, { recursive: true })
      }
    })
  )))

Deno.test("agent: interrupting an exec kills the command in the guest", () =>
  runTest(withAgent((client) =>
    Effect.gen(function* () {
      const out = collector()
      const fiber = yield* Effect.fork(
        client.exec({ argv: ["sh", "-c", "echo $$; exec sleep 60"], ...out }),
      )
      while (!out.text("stdout").includes("\n")) yield* Effect.sleep("20 millis")
      const pid = Number(out.text("stdout").trim())
      const started = performance.now()
      yield* Fiber.interrupt(fiber)
      assert.ok(performance.now() - started < 3000, "interruption waited for the kill only")
      assert.throws(() => Deno.statSync(`/proc/${pid}/cmdline`))
      assert.equal(yield* client.exec({ argv: ["true"] }), 0)
    })
  )))

Deno.test("agent: an agent that dies mid-exec fails the exec instead of hanging it", () =>
  runTest(withAgent((client, child) =>
    Effect.gen(function* () {
      // Short, since the killed agent leaves it behind.
      const fiber = yield* Effect.fork(client.exec({ argv: ["sleep", "3"] }))
      yield* Effect.sleep("100 millis")
      child.kill("SIGKILL")
      const error = yield* vmErrorOf(Fiber.join(fiber))
      assert.equal(error.message, "Helper VM failed to talk to its agent: the channel closed")
    })
  )))

Deno.test("agent: shutdown syncs and the agent exits", () =>
  runTest(withAgent((client, child) =>
    Effect.gen(function* () {
      yield* client.shutdown
      const status = yield* Effect.promise(() => child.status)
      assert.equal(status.code, 0)
      // The channel is gone: later requests fail clearly instead of hanging.
      const error = yield* vmErrorOf(client.exec({ argv: ["true"] }))
      assert.match(error.message, /channel closed/)
    })
  )))

Deno.test("agent: garbage from the host gets an error reply and the agent carries on", async () => {
  const agent = rawAgent()
  const { child, next } = agent
  const nextJson = async () => {
    const payload = await next()
    assert.equal(payload.kind, "json")
    return JSON.parse((payload as { text: string }).text)
  }
  try {
    assert.equal((await nextJson())._tag, "hello")
    const raw = (bytes: Array<number>) => Uint8Array.of(0, 0, 0, bytes.length, ...bytes)
    await agent.send(raw([1, ...new TextEncoder().encode("{nope")]))
    assert.match((await nextJson()).message, /not valid JSON/)
    await agent.send(encodeJsonFrame({ _tag: "launch" }))
    assert.match((await nextJson()).message, /unknown message 'launch'/)
    await agent.send(raw([42]))
    assert.match((await nextJson()).message, /unknown kind 42/)
    await agent.send(encodeJsonFrame({ _tag: "exec", id: 5, argv: [] }))
    assert.deepStrictEqual(await nextJson(), {
      _tag: "error",
      id: 5,
      message: "exec argv must be a non-empty array of strings",
    })
    await agent.send(encodeDataFrame("stdout", 5, Uint8Array.of(1)))
    assert.match((await nextJson()).message, /the host sent stdout data/)
    await agent.send(encodeJsonFrame({ _tag: "exec", id: 6, argv: ["true"] }))
    // An exec may send data before its exit (the protocol allows it, whatever the host's `true`
    // or its environment prints): passed over, and shown if the exit is not the one expected.
    const before: Array<Payload> = []
    let reply = await next()
    while (reply.kind !== "json") {
      before.push(reply)
      reply = await next()
    }
    assert.deepStrictEqual(
      JSON.parse(reply.text),
      { _tag: "exit", id: 6, code: 0 },
      `data before it: ${JSON.stringify(before)}`,
    )
    // A host that restored the VM asks for the hello the agent said to the host that saved it.
    await agent.send(encodeJsonFrame({ _tag: "hello" }))
    const again = await nextJson()
    assert.equal(again._tag, "hello")
    assert.equal(again.version, PROTOCOL_VERSION)
    // An oversize frame cannot be skipped: the agent says why and stops.
    await agent.send(Uint8Array.of(0xff, 0xff, 0xff, 0xff))
    assert.match((await nextJson()).message, /exceeds the limit/)
    assert.equal((await child.status).code, 0)
  } finally {
    await agent.stop()
  }
})
