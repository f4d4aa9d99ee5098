/**
 * Watching a running helper VM for host I/O errors. On a failed write (a full host filesystem)
 * QEMU pauses the VM, and the guest then waits forever without a word: the watcher sees the pause
 * over QMP and turns it into an error naming the file, within a second. A QEMU that stops
 * answering QMP altogether (frozen) is given up on too.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { VmHalted } from "../../domain/errors/vm.ts"
import type { Machine } from "./qemu_machine.ts"
import { connectQmp, type QmpClient, QmpError, type QmpEvent } from "./qmp.ts"

/** How often the VM's run state is asked for (events can be missed: they are not replayed). */
const POLL_INTERVAL = "500 millis"

/** How long QEMU may leave a QMP question unanswered before it is taken for frozen. */
const ANSWER_LIMIT = Duration.seconds(15)

/** The block devices of a machine, by the ids of its -drive options, and the files they are. */
const deviceFiles = (machine: Machine): Readonly<Record<string, string>> => ({
  target: machine.disk,
  ...(machine.images.runtime === undefined ? {} : { runtime: machine.images.runtime }),
})

/** The reason of an I/O error, in words: which file, and what the host said. */
export const describeIoError = (
  event: QmpEvent | undefined,
  files: Readonly<Record<string, string>>,
): string => {
  const device = String(event?.data?.device ?? event?.data?.["node-name"] ?? "")
  const file = files[device] ?? files.target ?? "a disk image"
  if (event?.data?.nospace === true) {
    return `the host filesystem holding ${file} is full; free some space and build again`
  }
  const reason = event?.data?.reason
  return `the host could not ${event?.data?.operation === "read" ? "read" : "write"} ${file}` +
    (typeof reason === "string" && reason !== "" ? ` (${reason})` : "")
}

const isIoError = (event: QmpEvent) => event.event === "BLOCK_IO_ERROR"

export interface HostIoWatch {
  /** Fails with VmHalted as soon as QEMU has paused the VM on an I/O error; never ends else. */
  readonly halted: Effect.Effect<never, VmHalted>
  /** The watcher's QMP connection, for other commands (QEMU serves one QMP client at a time). */
  readonly qmp: Effect.Effect<QmpClient, QmpError>
}

/**
 * Watch `machine` while the scope is open. The QMP connection is closed with the scope.
 */
export const watchHostIo = (
  machine: Machine,
): Effect.Effect<HostIoWatch, never, Scope.Scope> =>
  Effect.gen(function* () {
    const halted = yield* Deferred.make<never, VmHalted>()
    const connected = yield* Deferred.make<QmpClient, QmpError>()
    const files = deviceFiles(machine)
    const watch = Effect.gen(function* () {
      const qmp = yield* connectQmp(machine.qmpSocket).pipe(
        Effect.tapBoth({
          onFailure: (error) => Deferred.fail(connected, error),
          onSuccess: (client) => Deferred.succeed(connected, client),
        }),
      )
      let lastError: QmpEvent | undefined
      while (true) {
        const events = yield* Queue.takeAll(qmp.events)
        for (const event of events) if (isIoError(event)) lastError = event
        // QEMU answers QMP from its main loop even while the guest is busy: no answer at all
        // means QEMU itself is frozen (stopped, swapped out, hung), and the build gives up.
        const status = yield* qmp.execute("query-status").pipe(
          Effect.timeoutFail({
            duration: ANSWER_LIMIT,
            onTimeout: () =>
              new VmHalted({
                operation: "keep running",
                reason: `QEMU has not answered for ${
                  Duration.format(ANSWER_LIMIT)
                } (is it frozen?)`,
              }),
          }),
          Effect.tapError((error) =>
            error instanceof VmHalted ? Deferred.fail(halted, error) : Effect.void
          ),
        )
        const state = (status as { status?: unknown } | undefined)?.status
        if (state === "io-error") {
          return yield* Deferred.fail(
            halted,
            new VmHalted({ operation: "keep running", reason: describeIoError(lastError, files) }),
          )
        }
        yield* Effect.sleep(POLL_INTERVAL)
      }
    })
    // A watcher that cannot reach QMP (QEMU is stopping) has nothing left to watch.
    yield* watch.pipe(
      Effect.scoped,
      Effect.ignore,
      Effect.ensuring(
        Deferred.fail(connected, new QmpError({ command: "connect", reason: "QEMU is stopping" })),
      ),
      Effect.forkScoped,
    )
    return { halted: Deferred.await(halted), qmp: Deferred.await(connected) }
  })
