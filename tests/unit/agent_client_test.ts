/**
 * AgentClient against a scripted fake guest: the ways a guest can misbehave. And the agent's
 * reading of /proc/mounts for freeze.
 */
import assert from "node:assert/strict"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import {
  decodePayload,
  encodeDataFrame,
  encodeJsonFrame,
  FrameDecoder,
  MAX_FRAME_BYTES,
  type Payload,
  PROTOCOL_VERSION,
} from "../../src/domain/guest/frame.ts"
import { mountsUnder, unescapeMountField } from "../../guest/freeze.ts"
import { connectAgent } from "../../src/layers/qemu/agent_client.ts"
import { collector, vmErrorOf } from "../support/agent_calls.ts"
import { concatBytes as concat } from "../../src/domain/bytes.ts"
import { runTest } from "../support/effect.ts"

Deno.test("freeze: the disk filesystems under the root, deepest first, escapes read", () => {
  const mounts = [
    "/dev/sda2 /mnt/root ext4 rw 0 0",
    "proc /mnt/root/proc proc rw 0 0",
    "/dev/sda1 /mnt/root/boot\\040efi vfat rw 0 0",
    "/dev/sda3 /mnt/rooted ext4 rw 0 0",
    "/dev/vda / ext4 ro 0 0",
    "/dev/sda4 /mnt/root/boot\\040efi/deep ext4 rw 0 0",
  ].join("\n")
  assert.deepEqual(mountsUnder(mounts, "/mnt/root"), [
    "/mnt/root/boot efi/deep",
    "/mnt/root/boot efi",
    "/mnt/root",
  ])
  assert.equal(unescapeMountField("a\\011b\\134c"), "a\tb\\c")
})

/** A scripted guest: the test writes its frames and reads what the host sent. */
const fakeGuest = () => {
  let controller!: ReadableStreamDefaultController<Uint8Array>
  const readable = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) })
  const decoder = new FrameDecoder()
  const received: Array<Payload> = []
  const writable = new WritableStream<Uint8Array>({
    write: (chunk) => void received.push(...decoder.push(chunk).frames.map(decodePayload)),
  })
  const hello = encodeJsonFrame({ _tag: "hello", version: PROTOCOL_VERSION })
  return {
    channel: { readable, writable },
    send: (bytes: Uint8Array) => Effect.sync(() => controller.enqueue(bytes)),
    close: Effect.sync(() => controller.close()),
    hello: Effect.sync(() => controller.enqueue(hello)),
    /** Wait until the host has sent `count` frames. */
    received: (count: number) =>
      Effect.gen(function* () {
        while (received.length < count) yield* Effect.sleep("5 millis")
        return received
      }),
  }
}

const connectFake = (guest: ReturnType<typeof fakeGuest>) =>
  connectAgent(guest.channel, { helloTimeout: "2 seconds" })

Deno.test("client: greeting a restored agent asks for its hello before waiting for it", () =>
  runTest(Effect.scoped(Effect.gen(function* () {
    const guest = fakeGuest()
    const connecting = yield* Effect.fork(
      connectAgent(guest.channel, { helloTimeout: "2 seconds", greet: true }),
    )
    const [first] = yield* guest.received(1)
    assert.equal(first?.kind, "json")
    assert.deepStrictEqual(JSON.parse((first as { text: string }).text), { _tag: "hello" })
    yield* guest.hello
    const client = yield* Fiber.join(connecting)
    assert.equal(client.hello.version, PROTOCOL_VERSION)
  }))))

Deno.test("client: a channel closed mid-exec fails the exec and later calls", () =>
  runTest(Effect.scoped(Effect.gen(function* () {
    const guest = fakeGuest()
    yield* guest.hello
    const client = yield* connectFake(guest)
    const fiber = yield* Effect.fork(client.exec({ argv: ["sleep", "60"] }))
    const [exec] = yield* guest.received(1)
    assert.equal(exec?.kind, "json")
    yield* guest.close
    const error = yield* vmErrorOf(Fiber.join(fiber))
    assert.equal(error.message, "Helper VM failed to talk to its agent: the channel closed")
    yield* vmErrorOf(client.exec({ argv: ["true"] }))
    yield* vmErrorOf(client.shutdown)
  }))))

/** The VmError a pending exec fails with when the guest answers it with `reply`. */
const execAnsweredWith = (reply: Uint8Array) =>
  Effect.scoped(Effect.gen(function* () {
    const guest = fakeGuest()
    yield* guest.hello
    const client = yield* connectFake(guest)
    const fiber = yield* Effect.fork(client.exec({ argv: ["true"] }))
    yield* guest.received(1)
    yield* guest.send(reply)
    return yield* vmErrorOf(Fiber.join(fiber))
  }))

Deno.test("client: garbage from the guest fails pending execs with the reason", async () => {
  const error = await runTest(
    execAnsweredWith(encodeJsonFrame({ _tag: "exit", id: 1, code: "zero" })),
  )
  assert.match(error.message, /the agent sent an invalid message \(at code\)/)
})

Deno.test("client: an oversize frame from the guest is refused before it is read", async () => {
  const error = await runTest(execAnsweredWith(Uint8Array.of(0x7f, 0, 0, 0)))
  assert.match(error.message, new RegExp(`frame of ${0x7f000000} bytes .*${MAX_FRAME_BYTES}`))
})

Deno.test("client: output is delivered in order and exit codes to the right exec", () =>
  runTest(Effect.scoped(Effect.gen(function* () {
    const guest = fakeGuest()
    yield* guest.hello
    const client = yield* connectFake(guest)
    const out = collector()
    const fiber = yield* Effect.fork(client.exec({ argv: ["x"], ...out }))
    yield* guest.received(1)
    yield* guest.send(concat([
      encodeDataFrame("stdout", 1, Uint8Array.of(1, 2)),
      encodeDataFrame("stderr", 1, Uint8Array.of(3)),
      encodeDataFrame("stdout", 99, Uint8Array.of(9)), // an exec nobody waits for
      encodeDataFrame("stdout", 1, Uint8Array.of(4)),
      encodeJsonFrame({ _tag: "exit", id: 1, code: 42 }),
    ]))
    assert.equal(yield* Fiber.join(fiber), 42)
    assert.deepStrictEqual(out.bytes("stdout"), Uint8Array.of(1, 2, 4))
    assert.deepStrictEqual(out.bytes("stderr"), Uint8Array.of(3))
  }))))

Deno.test("client: no hello, a wrong version or a silent close fail the connection clearly", () =>
  runTest(Effect.gen(function* () {
    const silent = fakeGuest()
    const timeout = yield* vmErrorOf(connectAgent(silent.channel, { helloTimeout: "100 millis" }))
    assert.equal(
      timeout.message,
      "Helper VM failed to start its agent: the agent did not say hello in time",
    )

    const old = fakeGuest()
    yield* old.send(encodeJsonFrame({ _tag: "hello", version: PROTOCOL_VERSION + 1 }))
    const mismatch = yield* vmErrorOf(connectFake(old))
    assert.match(mismatch.message, /protocol version 2, this transient speaks 1/)

    const closed = fakeGuest()
    yield* closed.close
    const gone = yield* vmErrorOf(connectFake(closed))
    assert.match(gone.message, /channel closed/)

    const noisy = fakeGuest()
    yield* noisy.send(Uint8Array.of(0, 0, 0, 2, 1, 0x7b))
    const garbage = yield* vmErrorOf(connectFake(noisy))
    assert.match(garbage.message, /not valid JSON/)
  })))
