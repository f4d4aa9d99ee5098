/**
 * The guest agent: runs commands in the helper VM on the host's behalf, over the framed protocol
 * of src/domain/guest/frame.ts and src/domain/guest/protocol.ts. It imports nothing but the framing, since
 * the VM has no packages.
 *
 *   deno run -A --no-config guest/agent.ts --port /dev/vport0p1   (in the VM, started by init)
 *   deno run -A --no-config guest/agent.ts --socket PATH          (connect to a unix socket)
 *   deno run -A --no-config guest/agent.ts --stdio                (frames on stdin/stdout: tests)
 *
 * Execs run concurrently, each under the id the host gave it. Output is read in chunks of at most
 * 64 KiB and each chunk is written to the channel before the next is read, so a command's output
 * is throttled to what the host consumes. Stdin chunks from the host are written to the command
 * before the next frame is read, which throttles the host the same way.
 *
 * Freeze and thaw (src/domain/guest/builtins.ts) run in the agent's own process, answered as an
 * exec is: a process per snapshot would cost more than the snapshot. So does apply-layer, which
 * reads the exec's stdin as a command would, and which a signal aborts.
 *
 * A command that does not exist exits 127 (126 if it cannot be executed) with the reason on its
 * stderr; a request the agent cannot serve gets an `error` message and the agent carries on; a
 * frame longer than the limit ends the agent, since the stream cannot be resynchronised.
 */
import {
  chunks,
  decodePayload,
  encodeDataFrame,
  encodeJsonFrame,
  FrameDecoder,
  PROTOCOL_VERSION,
  type StreamName,
} from "../src/domain/guest/frame.ts"
import { AGENT_BUILTIN } from "../src/domain/guest/builtins.ts"
import { applyLayer } from "./apply_layer.ts"
import { attach } from "./attach.ts"
import { freeze, thaw } from "./freeze.ts"

/** A byte channel to the host: `read` returns null at end of input. */
interface Channel {
  read(buffer: Uint8Array): Promise<number | null>
  write(bytes: Uint8Array): Promise<number>
  /** In the VM, a read of 0 bytes means the host is not connected (yet): wait, don't stop. */
  readonly retryOnEof: boolean
  /** Only the agent of a helper VM powers the machine off on `shutdown`; others just exit. */
  readonly powerOff: boolean
}

const usage = "usage: agent.ts (--port DEVICE | --socket PATH | --stdio)"

const parseArgs = (args: ReadonlyArray<string>): { mode: string; path?: string } => {
  const [mode, path] = args
  if (mode === "--stdio" && path === undefined) return { mode }
  if ((mode === "--port" || mode === "--socket") && path !== undefined && args.length === 2) {
    return { mode, path }
  }
  throw new Error(usage)
}

const stdioChannel = (): Channel => ({
  read: (buffer) => Deno.stdin.read(buffer),
  write: (bytes) => Deno.stdout.write(bytes),
  retryOnEof: false,
  powerOff: false,
})

const socketChannel = async (path: string): Promise<Channel> => {
  const conn = await Deno.connect({ transport: "unix", path })
  return {
    read: (buffer) => conn.read(buffer),
    write: (bytes) => conn.write(bytes),
    retryOnEof: false,
    powerOff: false,
  }
}

/**
 * A virtio-serial port. It can be opened only once, and Deno runs the operations of one open
 * file one at a time, so a pending read would block every write. libc's read and write, called
 * on their own threads, let both directions flow at once on the single descriptor.
 */
const portChannel = (path: string): Channel => {
  const libc = Deno.dlopen("libc.so.6", {
    open: { parameters: ["buffer", "i32"], result: "i32" },
    read: { parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: true },
    write: { parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: true },
  })
  const O_RDWR = 0o2, O_NOCTTY = 0o400, O_CLOEXEC = 0o2000000
  const fd = libc.symbols.open(
    new TextEncoder().encode(`${path}\0`),
    O_RDWR | O_NOCTTY | O_CLOEXEC,
  )
  if (fd < 0) throw new Error(`cannot open ${path}`)
  return {
    read: async (buffer) => {
      const n = Number(await libc.symbols.read(fd, buffer, BigInt(buffer.length)))
      if (n < 0) throw new Error(`cannot read ${path}`)
      return n === 0 ? null : n
    },
    write: async (bytes) => {
      const n = Number(await libc.symbols.write(fd, bytes, BigInt(bytes.length)))
      if (n < 0) throw new Error(`cannot write ${path}`)
      return n
    },
    retryOnEof: true,
    // In the VM the agent is init or its child; anywhere else, never power the machine off.
    powerOff: Deno.pid === 1 || Deno.ppid === 1,
  }
}

/** How long the host's side of the channel may stay closed before the agent gives up on it. */
const HOST_GONE_MS = 2000

const log = (message: string) => console.error(`transient-agent: ${message}`)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

class Agent {
  readonly #channel: Channel
  readonly #running = new Map<number, Deno.ChildProcess>()
  /** Builtins that read stdin (apply-layer): where their input goes, and how to stop them. */
  readonly #streaming = new Map<number, StreamingBuiltin>()
  #writing: Promise<unknown> = Promise.resolve()
  #stopping = false

  constructor(channel: Channel) {
    this.#channel = channel
  }

  /** Write one frame whole; frames from concurrent execs queue up and never interleave. */
  send(frame: Uint8Array): Promise<void> {
    const write = this.#writing.then(async () => {
      for (let offset = 0; offset < frame.length;) {
        offset += await this.#channel.write(frame.subarray(offset))
      }
    })
    this.#writing = write.catch(() => {})
    return write
  }

  sendMessage(message: Record<string, unknown>): Promise<void> {
    return this.send(encodeJsonFrame(message))
  }

  hello(): Promise<void> {
    return this.sendMessage({
      _tag: "hello",
      version: PROTOCOL_VERSION,
      agent: `deno ${Deno.version.deno}`,
      pid: Deno.pid,
    })
  }

  async run(): Promise<void> {
    await this.hello()
    const decoder = new FrameDecoder()
    const buffer = new Uint8Array(256 * 1024)
    let connected = false
    let disconnectedSince: number | undefined
    while (!this.#stopping) {
      const n = await this.#channel.read(buffer)
      if (n === null) {
        if (!this.#channel.retryOnEof) return
        // Once a host has spoken, a channel that stays closed means it is gone (killed, say):
        // the agent ends, and init powers the VM off, so that no QEMU outlives its host.
        if (connected) {
          // Monotonic: the host sets the clock (attach.ts), which may move it by days.
          disconnectedSince ??= performance.now()
          if (performance.now() - disconnectedSince >= HOST_GONE_MS) {
            log(`the host has been gone for ${HOST_GONE_MS / 1000} s; stopping`)
            return
          }
        }
        // The host is not connected; a partial frame from a previous connection is void.
        decoder.reset()
        await sleep(50)
        continue
      }
      connected = true
      disconnectedSince = undefined
      const { frames, oversize } = decoder.push(buffer.subarray(0, n))
      for (const frame of frames) await this.#handle(frame)
      if (oversize !== undefined) {
        const message = `frame of ${oversize} bytes exceeds the limit; the agent stops`
        log(message)
        await this.sendMessage({ _tag: "error", message })
        return
      }
    }
  }

  #handle(frame: Uint8Array): Promise<void> {
    const payload = decodePayload(frame)
    if (payload.kind === "invalid") {
      return this.sendMessage({ _tag: "error", message: `the host sent ${payload.reason}` })
    }
    if (payload.kind === "data") {
      if (payload.stream !== "stdin") {
        return this.sendMessage({ _tag: "error", message: `the host sent ${payload.stream} data` })
      }
      return this.#stdin(payload.id, payload.data)
    }
    let message: unknown
    try {
      message = JSON.parse(payload.text)
    } catch {
      return this.sendMessage({
        _tag: "error",
        message: "the host sent a message that is not valid JSON",
      })
    }
    const tag = isRecord(message) ? message._tag : undefined
    if (!isRecord(message) || typeof tag !== "string") {
      return this.sendMessage({ _tag: "error", message: "the host sent a message without a _tag" })
    }
    switch (tag) {
      case "exec":
        return this.#exec(message)
      case "signal":
        return this.#signal(message)
      case "shutdown":
        return this.#shutdown()
      case "hello":
        // A VM restored from a saved state: its agent said hello to another host, long ago.
        return this.hello()
      default:
        return this.sendMessage({
          _tag: "error",
          message: `the host sent an unknown message '${tag}'`,
        })
    }
  }

  #exec(message: Record<string, unknown>): Promise<void> {
    const { id, argv, env, cwd, stdin } = message
    if (!isId(id)) return this.sendMessage({ _tag: "error", message: "exec without a valid id" })
    const refuse = (reason: string) => this.sendMessage({ _tag: "error", id, message: reason })
    if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === "string")) {
      return refuse("exec argv must be a non-empty array of strings")
    }
    if (env !== undefined && !isStringRecord(env)) return refuse("exec env must map strings")
    if (cwd !== undefined && typeof cwd !== "string") return refuse("exec cwd must be a string")
    if (this.#running.has(id) || this.#streaming.has(id)) {
      return refuse(`exec id ${id} is already running`)
    }
    if (cwd !== undefined && !isDirectory(cwd)) {
      return refuse(`working directory ${cwd} does not exist`)
    }
    if (argv[0] === AGENT_BUILTIN.applyLayer) {
      return this.#applyLayer(id, argv.slice(1) as Array<string>, stdin === true)
    }
    const builtin = BUILTINS.get(argv[0])
    if (builtin !== undefined) return this.#builtin(id, builtin, argv.slice(1) as Array<string>)
    // Runs on its own; the read loop carries on with the next frame.
    this.#supervise(id, argv as Array<string>, env, cwd, stdin === true).catch((error) =>
      log(`exec ${id}: ${error}`)
    )
    return Promise.resolve()
  }

  async #supervise(
    id: number,
    argv: Array<string>,
    env: Record<string, string> | undefined,
    cwd: string | undefined,
    withStdin: boolean,
  ): Promise<void> {
    const [program, ...args] = argv as [string, ...Array<string>]
    let child: Deno.ChildProcess
    try {
      child = new Deno.Command(program, {
        args,
        ...(env === undefined ? {} : { env }),
        ...(cwd === undefined ? {} : { cwd }),
        stdin: withStdin ? "piped" : "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn()
    } catch (error) {
      const denied = error instanceof Deno.errors.PermissionDenied
      const reason = denied ? "permission denied" : "command not found"
      const text = new TextEncoder().encode(`transient-agent: ${program}: ${reason}\n`)
      await this.send(encodeDataFrame("stderr", id, text))
      return this.sendMessage({ _tag: "exit", id, code: denied ? 126 : 127 })
    }
    this.#running.set(id, child)
    try {
      const [status] = await Promise.all([
        child.status,
        this.#pump(id, "stdout", child.stdout),
        this.#pump(id, "stderr", child.stderr),
      ])
      await this.sendMessage({ _tag: "exit", id, code: status.code })
    } finally {
      this.#running.delete(id)
    }
  }

  async #builtin(id: number, builtin: Builtin, args: Array<string>): Promise<void> {
    let outcome: BuiltinOutcome
    try {
      outcome = await builtin(args)
    } catch (error) {
      outcome = { code: 1, problems: [error instanceof Error ? error.message : String(error)] }
    }
    if (outcome.problems.length > 0) {
      const text = new TextEncoder().encode(outcome.problems.map((line) => `${line}\n`).join(""))
      for (const piece of chunks(text)) await this.send(encodeDataFrame("stderr", id, piece))
    }
    await this.sendMessage({ _tag: "exit", id, code: outcome.code })
  }

  #applyLayer(id: number, args: Array<string>, withStdin: boolean): Promise<void> {
    const [root] = args
    if (root === undefined || args.length !== 1) {
      const problems = [`usage: ${AGENT_BUILTIN.applyLayer} ROOT`]
      return this.#builtin(id, () => ({ code: 2, problems }), [])
    }
    // One chunk in flight: the read loop waits for the applier, which throttles the host.
    const input = new TransformStream<Uint8Array, Uint8Array>()
    const writer = input.writable.getWriter()
    // Without stdin, as for a command: an empty input.
    if (!withStdin) writer.close().catch(() => {})
    const abort = new AbortController()
    this.#streaming.set(id, { writer, abort })
    // Runs on its own; the read loop carries on with the stdin frames.
    this.#runApplyLayer(id, root, input.readable, abort.signal).catch((error) =>
      log(`exec ${id}: ${error}`)
    )
    return Promise.resolve()
  }

  async #runApplyLayer(
    id: number,
    root: string,
    input: ReadableStream<Uint8Array>,
    signal: AbortSignal,
  ): Promise<void> {
    let code: number
    let stream: StreamName
    let line: string
    try {
      // ADD's destination, as COPY's, is made when missing.
      await Deno.mkdir(root, { recursive: true })
      const { entries, bytes, whiteouts } = await applyLayer(input, root, { signal })
      code = 0
      stream = "stdout"
      line = `applied ${entries} entries, ${bytes} bytes, ${whiteouts} whiteouts onto ${root}`
    } catch (error) {
      const name = signal.aborted ? signal.reason : undefined
      code = 1
      stream = "stderr"
      line = error instanceof Error ? error.message : String(error)
      if (typeof name === "string" && name in SIGNAL_NUMBERS) {
        code = 128 + SIGNAL_NUMBERS[name as keyof typeof SIGNAL_NUMBERS]
        line = `transient-agent: apply-layer stopped by ${name}`
      }
    } finally {
      this.#streaming.delete(id)
      // Input still on its way (after an error) is dropped, and a write waiting on it ends.
      input.cancel().catch(() => {})
    }
    const text = new TextEncoder().encode(`${line}\n`)
    for (const piece of chunks(text)) await this.send(encodeDataFrame(stream, id, piece))
    await this.sendMessage({ _tag: "exit", id, code })
  }

  async #pump(id: number, stream: StreamName, readable: ReadableStream<Uint8Array>) {
    for await (const chunk of readable) {
      for (const piece of chunks(chunk)) await this.send(encodeDataFrame(stream, id, piece))
    }
  }

  async #stdin(id: number, data: Uint8Array): Promise<void> {
    const child = this.#running.get(id)
    const streaming = this.#streaming.get(id)
    if (child === undefined && streaming !== undefined) return feedBuiltin(streaming.writer, data)
    // Input for a command that has ended (or was never asked for stdin) is dropped.
    if (child === undefined) return
    try {
      if (data.length === 0) await child.stdin.close()
      else {
        const writer = child.stdin.getWriter()
        try {
          await writer.write(data)
        } finally {
          writer.releaseLock()
        }
      }
    } catch {
      // The command closed its stdin or has none; like a pipe, further input is discarded.
    }
  }

  #signal(message: Record<string, unknown>): Promise<void> {
    const { id, signal } = message
    if (!isId(id) || (signal !== "SIGTERM" && signal !== "SIGKILL" && signal !== "SIGINT")) {
      return this.sendMessage({ _tag: "error", message: "signal needs an id and a signal name" })
    }
    try {
      this.#running.get(id)?.kill(signal)
      this.#streaming.get(id)?.abort.abort(signal)
    } catch {
      // Already gone: its exit message is on its way.
    }
    return Promise.resolve()
  }

  killAll(): void {
    for (const { abort } of this.#streaming.values()) abort.abort("SIGKILL")
    for (const child of this.#running.values()) {
      try {
        child.kill("SIGKILL")
      } catch {
        // Already gone.
      }
    }
  }

  async #shutdown(): Promise<void> {
    this.#stopping = true
    this.killAll()
    try {
      await new Deno.Command("sync", { stdin: "null", stdout: "null", stderr: "null" }).output()
    } catch (error) {
      log(`sync failed: ${error}`)
    }
    await this.sendMessage({ _tag: "goodbye" })
    if (this.#channel.powerOff) await powerOff()
  }
}

interface StreamingBuiltin {
  readonly writer: WritableStreamDefaultWriter<Uint8Array>
  readonly abort: AbortController
}

const SIGNAL_NUMBERS = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as const

/** A stdin frame for a builtin: written once the previous one was taken; empty closes it. */
const feedBuiltin = async (
  writer: WritableStreamDefaultWriter<Uint8Array>,
  data: Uint8Array,
): Promise<void> => {
  try {
    if (data.length === 0) await writer.close()
    else await writer.write(data)
  } catch {
    // The builtin has stopped reading (it failed or was aborted): like a pipe, input is discarded.
  }
}

interface BuiltinOutcome {
  readonly code: number
  readonly problems: ReadonlyArray<string>
}
type Builtin = (args: Array<string>) => BuiltinOutcome | Promise<BuiltinOutcome>

const BUILTINS = new Map<unknown, Builtin>([
  [AGENT_BUILTIN.freeze, (args) => {
    const [root] = args
    if (root === undefined || args.length !== 1) {
      return { code: 2, problems: [`usage: ${AGENT_BUILTIN.freeze} ROOT`] }
    }
    freeze(root)
    return { code: 0, problems: [] }
  }],
  [AGENT_BUILTIN.thaw, () => {
    const problems = thaw()
    return { code: problems.length === 0 ? 0 : 1, problems }
  }],
  [AGENT_BUILTIN.attach, async (args) => {
    const problems = await attach(args)
    return { code: problems.length === 0 ? 0 : 1, problems }
  }],
])

/** Power the VM off; the agent may be PID 1, so it must not simply exit. */
const powerOff = async (): Promise<never> => {
  try {
    await Deno.writeTextFile("/proc/sysrq-trigger", "o")
  } catch {
    try {
      await new Deno.Command("poweroff", { args: ["-f"] }).output()
    } catch (error) {
      log(`cannot power off: ${error}`)
    }
  }
  await sleep(30_000)
  Deno.exit(1)
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const isStringRecord = (value: unknown): value is Record<string, string> =>
  isRecord(value) && Object.values(value).every((v) => typeof v === "string")

const isId = (value: unknown): value is number =>
  Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 0xffff_ffff

const isDirectory = (path: string): boolean => {
  try {
    return Deno.statSync(path).isDirectory
  } catch {
    return false
  }
}

if (import.meta.main) {
  try {
    const { mode, path } = parseArgs(Deno.args)
    const channel = mode === "--stdio"
      ? stdioChannel()
      : mode === "--socket"
      ? await socketChannel(path!)
      : portChannel(path!)
    const agent = new Agent(channel)
    await agent.run()
    // Without a host nobody waits for the commands still running.
    agent.killAll()
    Deno.exit(0)
  } catch (error) {
    log(error instanceof Error ? error.message : String(error))
    Deno.exit(1)
  }
}
