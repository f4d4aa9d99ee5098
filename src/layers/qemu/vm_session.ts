/**
 * A VmSession over the guest agent: each operation is its command (src/domain/guest/commands.ts)
 * run through the agent; RUN streams its output; INSPECT wires the user's terminal to the
 * guest's console. Nothing here knows about QEMU, so tests drive it with any AgentClient.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { commandFor, type GuestCommand, quoteArgv } from "../../domain/guest/commands.ts"
import { AgentChannelBroken, GuestCommandFailed, type VmError } from "../../domain/errors/vm.ts"
import { describeOperation, GuestOperation } from "../../domain/guest/operation.ts"
import { OutputTail } from "../../domain/output_tail.ts"
import type {
  ApplyLayerOperation,
  RunRequest,
  SessionOperation,
  VmSession,
} from "../../services/build_vm.ts"
import type { TerminalShape } from "../../services/terminal.ts"
import type { AgentClient, ExecRequest } from "./agent_client.ts"
import { connectUnix } from "./unix_socket.ts"

/** How a session reaches the user's terminal for INSPECT. */
export interface ShellAccess {
  readonly terminal: TerminalShape
  /** The host end of the guest console the shell runs on. */
  readonly socket: string
  /** That console as the guest names it (`/dev/hvc0`). */
  readonly tty: string
}

/** A command as one readable line for an error message (scripts' arguments may hold newlines). */
const commandLine = (command: GuestCommand): string => {
  const line = quoteArgv(command.argv)
  const newline = line.indexOf("\n")
  return newline === -1 ? line : `${line.slice(0, newline)}…`
}

/** The command a guest script names as the one that failed (see `must` in guest/scripts). */
export const failingCommand = (lines: ReadonlyArray<string>): string | undefined => {
  for (const line of [...lines].reverse()) {
    const match = /^transient: (`.*` exited with status \d+)$/.exec(line)
    if (match) return match[1]
  }
  return undefined
}

const execRequest = (command: GuestCommand): ExecRequest => ({
  argv: command.argv,
  ...(command.env === undefined ? {} : { env: command.env }),
})

/** What a session needs of the machine beyond the agent. */
export interface MachineAccess {
  /**
   * Fails when the VM can no longer run (QEMU paused it on a host I/O error); every operation
   * ends with that error then, instead of waiting for a guest that will not answer.
   */
  readonly halted?: Effect.Effect<never, VmError>
  /** Make `next` the disk's active file (QMP); the guest is frozen meanwhile. */
  readonly snapshotDisk?: (next: string) => Effect.Effect<void, VmError>
}

/**
 * Race `effect` against the VM halting, so that no operation waits for a guest that will not
 * answer; a channel that breaks because QEMU died says that QEMU died, and how.
 */
const guardedBy =
  (halted: Effect.Effect<never, VmError>) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.raceFirst(effect, halted).pipe(
      Effect.catchIf(
        (error): error is E & AgentChannelBroken => error instanceof AgentChannelBroken,
        (broken) =>
          halted.pipe(
            Effect.timeout("1 second"),
            Effect.catchTag("TimeoutException", () => Effect.fail(broken)),
          ),
      ),
    )

/** INSPECT: a shell in the guest on `shellAccess`'s console, wired to the user's terminal. */
const openShell = (client: AgentClient, shellAccess: ShellAccess) =>
  Effect.gen(function* () {
    const { terminal } = shellAccess
    if (!terminal.interactive) {
      return yield* new GuestCommandFailed({
        operation: "open a shell",
        reason: "INSPECT needs a terminal on standard input and output",
      })
    }
    const console = yield* connectUnix(shellAccess.socket).pipe(
      Effect.mapError((error) =>
        new GuestCommandFailed({ operation: "open a shell", reason: error.message })
      ),
    )
    const { columns, rows } = yield* terminal.size
    yield* terminal.raw
    // The guest console to the terminal, chunk by chunk (closing the console must not close
    // the process's stdout: the build goes on after the shell).
    yield* Stream.fromReadableStream({
      evaluate: () => console.readable,
      onError: () => undefined,
      releaseLockOnEnd: true,
    }).pipe(Stream.runForEach(terminal.write), Effect.ignore, Effect.forkScoped)
    const writer = console.writable.getWriter()
    yield* terminal.input.pipe(
      Stream.runForEach((chunk) => Effect.promise(() => writer.write(chunk).catch(() => {}))),
      Effect.forkScoped,
    )
    const command = commandFor(
      GuestOperation.Shell({ console: shellAccess.tty, rows, columns }),
    )
    return yield* client.exec(execRequest(command))
  })

export const makeSession = (
  client: AgentClient,
  shellAccess: ShellAccess,
  machine: MachineAccess = {},
): VmSession => {
  const guarded = guardedBy(machine.halted ?? Effect.never)

  /** An operation's command, fed `stdin` when given; a non-zero exit fails with its output. */
  const execute = Effect.fn("VmSession.execute")(function* (
    operation: SessionOperation | ApplyLayerOperation,
    stdin?: Stream.Stream<Uint8Array, VmError>,
  ) {
    const command = commandFor(operation)
    const tail = new OutputTail()
    const code = yield* guarded(client.exec({
      ...execRequest(command),
      ...(stdin === undefined ? {} : { stdin }),
      onOutput: (_stream, chunk) => Effect.sync(() => tail.push(chunk)),
    }))
    if (code !== 0) {
      const lines = tail.lines()
      return yield* new GuestCommandFailed({
        operation: describeOperation(operation),
        reason: failingCommand(lines) ?? `\`${commandLine(command)}\` exited with status ${code}`,
        exitCode: code,
        log: lines,
      })
    }
  })

  const perform = (operation: SessionOperation) => execute(operation)

  const applyLayer = <E>(operation: ApplyLayerOperation, tar: Stream.Stream<Uint8Array, E>) =>
    Effect.gen(function* () {
      // The agent client kills the command when its input fails; the input's own error is then
      // the one to report, not the guest's view of a cut stream.
      const inputFailure = yield* Deferred.make<E>()
      const input = tar.pipe(
        Stream.catchAll((error) =>
          Stream.fromEffect(
            Deferred.succeed(inputFailure, error).pipe(
              Effect.zipRight(
                Effect.fail(
                  new GuestCommandFailed({
                    operation: describeOperation(operation),
                    reason: "its input failed",
                  }),
                ),
              ),
            ),
          )
        ),
      )
      const applied = yield* Effect.exit(execute(operation, input))
      const failed = yield* Deferred.poll(inputFailure)
      if (Option.isSome(failed)) return yield* Effect.flip(failed.value)
      return yield* applied
    }).pipe(Effect.withSpan("VmSession.applyLayer"))

  const run = Effect.fn("VmSession.run")(function* (request: RunRequest) {
    const command = commandFor(GuestOperation.Run({ command: request.command }))
    return yield* guarded(client.exec({ ...execRequest(command), onOutput: request.onOutput }))
  })

  const shell = openShell(client, shellAccess).pipe(
    Effect.scoped,
    guarded,
    Effect.withSpan("VmSession.shell"),
  )

  /**
   * The thaw after the last snapshot. It is not waited for: the next step's commands start at
   * once, and any write of theirs waits in the guest's kernel until the filesystems are thawed,
   * which spares a round trip to the guest per step. The next snapshot and the end of the build
   * wait for it (and fail if it did).
   */
  let thawing: Fiber.RuntimeFiber<void, VmError> | undefined
  const thawed = Effect.suspend(() => {
    const pending = thawing
    thawing = undefined
    return pending === undefined ? Effect.void : Fiber.join(pending)
  })

  const snapshot = Effect.fn("VmSession.snapshot")(function* (next: string) {
    const { snapshotDisk } = machine
    if (snapshotDisk === undefined) {
      return yield* new GuestCommandFailed({
        operation: "snapshot the disk",
        reason: "this VM has no control connection",
      })
    }
    yield* thawed
    yield* perform(GuestOperation.Freeze())
    const taken = yield* Effect.exit(guarded(snapshotDisk(next)))
    if (Exit.isFailure(taken)) {
      // Thawed whatever the snapshot did: a frozen filesystem would stop every later step.
      yield* Effect.ignore(perform(GuestOperation.Thaw()))
      return yield* taken
    }
    thawing = yield* Effect.forkDaemon(perform(GuestOperation.Thaw()))
  })

  /** Sync and Release come after every step: the thaw is over before they start. */
  const performAfterThaw = (operation: SessionOperation) =>
    operation._tag === "Sync" || operation._tag === "Release"
      ? Effect.zipRight(thawed, perform(operation))
      : perform(operation)

  return { perform: performAfterThaw, applyLayer, run, shell, snapshot }
}
