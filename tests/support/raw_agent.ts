/**
 * The guest agent run on this host over `--stdio`, driven frame by frame: what the client hides
 * (exit codes of builtins, error replies, the frames themselves) is seen as sent.
 */
import { decodePayload, FrameDecoder, type Payload } from "../../src/domain/guest/frame.ts"

const agentPath = new URL("../../guest/agent.ts", import.meta.url).pathname

export const spawnAgent = () =>
  new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-config", agentPath, "--stdio"],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn()

export const stopAgent = async (child: Deno.ChildProcess) => {
  try {
    child.kill("SIGKILL")
  } catch {
    // Exited.
  }
  await child.status
}

/** The agent driven frame by frame, to see exit codes the client does not return. */
export const rawAgent = () => {
  const child = spawnAgent()
  const writer = child.stdin.getWriter()
  const reader = child.stdout.getReader()
  const decoder = new FrameDecoder()
  const pending: Array<Payload> = []
  const next = async (): Promise<Payload> => {
    while (pending.length === 0) {
      const { value, done } = await reader.read()
      if (done) throw new Error("agent closed its stdout")
      pending.push(...decoder.push(value).frames.map(decodePayload))
    }
    return pending.shift()!
  }
  /** The exec's exit code and its stderr, passing over other data. */
  const exitOf = async (id: number): Promise<{ code: number; stderr: string }> => {
    let stderr = ""
    for (;;) {
      const payload = await next()
      if (payload.kind === "data" && payload.id === id && payload.stream === "stderr") {
        stderr += new TextDecoder().decode(payload.data)
      }
      if (payload.kind !== "json") continue
      const message = JSON.parse(payload.text)
      if (message._tag === "exit" && message.id === id) return { code: message.code, stderr }
    }
  }
  const send = (frame: Uint8Array) => writer.write(frame)
  const stop = async () => {
    await writer.close().catch(() => {})
    await reader.cancel().catch(() => {})
    await stopAgent(child)
  }
  return { child, next, exitOf, send, stop }
}
