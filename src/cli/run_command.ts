/**
 * `transient run IMAGE`: boot what was built, on a throw-away overlay, with its serial console
 * on the terminal; or, for pipelines, until a console line says it is up.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Layer from "effect/Layer"
import { runnerLive, storeLive } from "../app/live.ts"
import { runImage } from "../app/run_image.ts"
import { parsePortForward, parseVncDisplay, type PortForward } from "../domain/vm_run.ts"
import { commandDescription } from "./help.ts"
import { AtLeastOne, imageBackendOption, machineOptions, validateOptions } from "./options.ts"
import { handler, verboseOption } from "./root.ts"
import { usage } from "./usage.ts"

const image = Args.text({ name: "IMAGE" }).pipe(
  Args.withDescription("An image in the store (as `image ls` shows it), or a path to a qcow2"),
)

const { accel, cpus, memory, noNetwork } = machineOptions(
  "the VM",
  "no downloads, no forwarded ports",
)

const forward = Options.text("forward").pipe(
  Options.withPseudoName("HOST:GUEST"),
  Options.withDescription("Forward TCP port HOST (on 127.0.0.1) to the guest's port GUEST"),
  Options.repeated,
)

const until = Options.text("until").pipe(
  Options.withPseudoName("REGEX"),
  // For pipelines: the terminal is not attached.
  Options.withDescription("Watch the console; stop the VM and exit 0 once a line matches REGEX"),
  Options.optional,
)

const timeout = Options.integer("timeout").pipe(
  Options.withPseudoName("SECONDS"),
  Options.withDescription("After SECONDS, stop the VM and exit 1 with the console's last lines"),
  Options.optional,
)

const consoleLog = Options.text("console-log").pipe(
  Options.withPseudoName("FILE"),
  Options.withDescription("Also write everything the console prints to FILE"),
  Options.optional,
)

const vnc = Options.text("vnc").pipe(
  Options.withPseudoName("DISPLAY"),
  Options.withDescription("Show the screen over VNC: N or ADDRESS:N (default address 127.0.0.1)"),
  Options.optional,
)

const firmware = Options.choice("firmware", ["auto", "bios", "uefi"] as const).pipe(
  Options.withDescription("SeaBIOS or OVMF; auto: what the image needs, as `image ls --json` says"),
  Options.withDefault("auto" as const),
)

const secureBoot = Options.boolean("secure-boot").pipe(
  Options.withDescription("UEFI with Secure Boot on and Microsoft's keys enrolled"),
)

const RunFlags = Schema.Struct({
  cpus: Schema.OptionFromSelf(AtLeastOne("cpus")),
  memory: AtLeastOne("memory"),
  timeout: Schema.OptionFromSelf(AtLeastOne("timeout")),
})

const parseUntil = (text: string): RegExp | string => {
  try {
    return new RegExp(text, "m")
  } catch (error) {
    return `--until is not a regular expression: ${(error as Error).message}`
  }
}

export const runCommand = Command.make(
  "run",
  {
    image,
    accel,
    cpus,
    memory,
    noNetwork,
    forward,
    until,
    timeout,
    consoleLog,
    vnc,
    firmware,
    secureBoot,
    backend: imageBackendOption,
    verbose: verboseOption,
  },
  handler((args) =>
    Effect.gen(function* () {
      yield* validateOptions(RunFlags, args)
      const forwards: Array<PortForward> = []
      for (const text of args.forward) {
        const parsed = parsePortForward(text)
        if (typeof parsed === "string") return yield* usage(parsed)
        forwards.push(parsed)
      }
      const pattern = Option.map(args.until, parseUntil)
      if (Option.isSome(pattern) && typeof pattern.value === "string") {
        return yield* usage(pattern.value)
      }
      const display = Option.map(args.vnc, parseVncDisplay)
      if (Option.isSome(display) && typeof display.value !== "string") {
        return yield* usage(display.value.problem)
      }
      if (args.secureBoot && args.firmware === "bios") {
        return yield* usage("--secure-boot needs UEFI firmware, not --firmware bios")
      }
      const outcome = yield* runImage({
        image: args.image,
        accel: args.accel,
        firmware: args.firmware,
        secureBoot: args.secureBoot,
        ...(Option.isSome(args.cpus) ? { cpus: args.cpus.value } : {}),
        memoryMiB: args.memory,
        network: !args.noNetwork,
        forwards,
        ...(Option.isSome(pattern) && pattern.value instanceof RegExp
          ? { until: pattern.value }
          : {}),
        ...(Option.isSome(args.timeout) ? { timeoutSeconds: args.timeout.value } : {}),
        ...(Option.isSome(args.consoleLog) ? { consoleLog: args.consoleLog.value } : {}),
        ...(Option.isSome(display) && typeof display.value === "string"
          ? { vnc: display.value }
          : {}),
      }).pipe(
        Effect.provide(
          Layer.merge(runnerLive, storeLive({ backend: args.backend, progress: "plain" })),
        ),
      )
      if (outcome._tag === "Matched") {
        yield* Console.error(`transient run: matched '${outcome.line}'`)
      }
      if (outcome._tag === "PoweredOff") {
        yield* Console.error(`transient run: the VM powered off`)
      }
    })
  ),
).pipe(
  Command.withDescription(commandDescription({
    summary: "Boot an image on a throw-away overlay: the image itself is never written",
    details: [
      "The serial console is the terminal; Ctrl-] leaves and stops the VM.",
      "UEFI runs on a throw-away copy of OVMF's variable store, as the disk on its overlay.",
    ],
    examples: [
      "transient run web --forward 8080:80",
      "transient run web --accel tcg --until 'login:' --timeout 300",
      "transient run web --firmware uefi --secure-boot",
    ],
  })),
)
