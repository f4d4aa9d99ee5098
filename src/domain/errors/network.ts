/**
 * A network read that brought nothing for the network timeout: the cause inside the errors that
 * say what was being read (a registry's RegistryStalled, a source's SourceUnavailable or
 * TransferIncomplete), and what a body's reader fails with when its bytes stop coming.
 */
import * as Schema from "effect/Schema"
import { NETWORK_TIMEOUT_VARIABLE } from "../network_timeout.ts"

export class NothingArrived extends Schema.TaggedError<NothingArrived>()("NothingArrived", {
  /** The answer to a request (its status and headers), or the next byte of its body. */
  awaited: Schema.Literal("answer", "byte"),
  seconds: Schema.Number,
}) {
  override get message() {
    const what = this.awaited === "answer" ? "no answer" : "no byte"
    return `${what} for ${this.seconds} s (${NETWORK_TIMEOUT_VARIABLE} sets how long to wait)`
  }
}
