/**
 * ReporterConsole over an injected sink and clock: the exact text lines, the JSON events (each
 * one a ReportEvent, as docs/progress-events.md describes them), and how progress is paced on a
 * terminal and in logs.
 */
import assert from "node:assert/strict"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { ReportEvent } from "../../src/domain/report_event.ts"
import {
  type ConsoleSink,
  makeReporterConsole,
} from "../../src/layers/reporter/reporter_console.ts"
import { renderBar, renderLine } from "../../src/layers/reporter/progress_format.ts"
import type { ProgressMode, ReporterShape } from "../../src/services/reporter.ts"

const MiB = 1024 * 1024

const capture = (mode: ProgressMode, isTerminal = false) => {
  const decoder = new TextDecoder()
  const written = { stdout: "", stderr: "" }
  let clock = 0
  const sink: ConsoleSink = {
    stdout: (bytes) => written.stdout += decoder.decode(bytes),
    stderr: (bytes) => written.stderr += decoder.decode(bytes),
    isTerminal,
    columns: () => 100,
    now: () => clock,
  }
  const tick = (ms: number) => clock += ms
  return { reporter: makeReporterConsole(mode, sink), written, tick }
}

const events = (text: string) => text.trimEnd().split("\n").map((line) => JSON.parse(line))

Deno.test("text mode prints step lines, live output, warnings and the result", () => {
  const { reporter, written } = capture("plain")
  Effect.runSync(Effect.all([
    reporter.stepStart(3, 7, "RUN apk add openssh"),
    reporter.output("stdout", new TextEncoder().encode("fetch http://...\n")),
    reporter.output("stderr", new TextEncoder().encode("OK: 12 MiB\n")),
    reporter.stepEnd(3, 7, 1234),
    reporter.warn("KVM is not available, using TCG"),
    reporter.result({
      name: "base",
      path: "/store/base",
      virtualSize: 256 * MiB,
      actualSize: 3 * MiB + 512 * 1024,
      durationMs: 12345,
      steps: [
        { index: 1, text: "FROM scratch", durationMs: 0 },
        { index: 2, text: "RUN apk add openssh", durationMs: 9876 },
      ],
    }),
    reporter.failure("Step 4/7 : RUN false failed: exit status 1"),
  ]))
  assert.equal(
    written.stdout,
    "Step 3/7 : RUN apk add openssh\nfetch http://...\nOK: 12 MiB\n" +
      "Successfully built base\n/store/base\n" +
      "  virtual size 256.00 MiB, on disk 3.50 MiB, built in 12.3 s\n" +
      "  Step 1/2    0.0 s  FROM scratch\n" +
      "  Step 2/2    9.9 s  RUN apk add openssh\n",
  )
  assert.equal(
    written.stderr,
    "warning: KVM is not available, using TCG\nerror: Step 4/7 : RUN false failed: exit status 1\n",
  )
})

Deno.test("json mode prints one object per event and line", () => {
  const { reporter, written } = capture("json")
  Effect.runSync(Effect.all([
    reporter.stepStart(3, 7, "RUN apk add openssh"),
    reporter.output("stdout", new TextEncoder().encode("héllo\n")),
    reporter.output("stderr", new Uint8Array([0xff, 0xfe])),
    reporter.stepEnd(3, 7, 1234.4),
    reporter.warn("careful"),
    reporter.failure("it broke"),
  ]))
  assert.equal(written.stderr, "")
  assert.deepEqual(events(written.stdout), [
    { event: "step-start", step: 3, total: 7, text: "RUN apk add openssh" },
    { event: "output", stream: "stdout", text: "héllo\n" },
    { event: "output", stream: "stderr", base64: "//4=" },
    { event: "step-end", step: 3, total: 7, durationMs: 1234 },
    { event: "warning", message: "careful" },
    { event: "error", message: "it broke" },
  ])
})

Deno.test("json progress is paced and ends with a done event", () => {
  const { reporter, written, tick } = capture("json")
  const progress = Effect.runSync(reporter.progress("Downloading base", 100 * MiB))
  for (let i = 0; i < 100; i++) {
    tick(10)
    Effect.runSync(progress.advance(MiB))
  }
  Effect.runSync(progress.done)
  const all = events(written.stdout)
  // A start, one per tenth (the second rarely comes first at this pace), and the end.
  assert.ok(all.length >= 11 && all.length <= 13, `got ${all.length} events`)
  assert.deepEqual(all[0], {
    event: "progress",
    label: "Downloading base",
    bytes: 0,
    total: 100 * MiB,
  })
  assert.deepEqual(all.at(-1), {
    event: "progress",
    label: "Downloading base",
    bytes: 100 * MiB,
    total: 100 * MiB,
    done: true,
    durationMs: 1000,
  })
})

Deno.test("plain progress prints a line per tenth at most once a second", () => {
  const { reporter, written, tick } = capture("auto", false)
  const fast = Effect.runSync(reporter.progress("Fast", 10 * MiB))
  for (let i = 0; i < 10; i++) {
    tick(20)
    Effect.runSync(fast.advance(MiB))
  }
  Effect.runSync(fast.done)
  // Too quick for periodic lines: the start and the summary only.
  assert.deepEqual(written.stderr.trimEnd().split("\n"), [
    "Fast...",
    "Fast: 10.00 MiB in 0:00 (50.00 MiB/s)",
  ])
  written.stderr = ""
  const slow = Effect.runSync(reporter.progress("Slow", 10 * MiB))
  for (let i = 0; i < 10; i++) {
    tick(2000)
    Effect.runSync(slow.advance(MiB))
  }
  const lines = written.stderr.trimEnd().split("\n")
  assert.equal(lines.length, 11)
  assert.equal(lines[1], "Slow: 10% (1024.00 KiB of 10.00 MiB, 512.00 KiB/s, ETA 0:18)")
  assert.equal(written.stdout, "")
})

Deno.test("on a terminal, progress is a bar redrawn in place and cleared for other output", () => {
  const { reporter, written, tick } = capture("auto", true)
  const progress = Effect.runSync(reporter.progress("Downloading base", 4 * MiB))
  tick(500)
  Effect.runSync(progress.advance(MiB))
  assert.match(written.stderr, /^\rDownloading base \[#+\.+\] {2}25% {2}1024\.00 KiB \/ 4\.00 MiB/)
  assert.ok(written.stderr.endsWith("2.00 MiB/s  ETA 0:02\x1b[K"))
  Effect.runSync(reporter.warn("hm"))
  assert.ok(written.stderr.endsWith("\r\x1b[Kwarning: hm\n"))
})

Deno.test("bars and lines cope with unknown totals", () => {
  const snapshot = { label: "x", bytes: 3 * MiB, total: undefined, elapsedMs: 1000 }
  assert.equal(renderBar(snapshot, 80), "x  3.00 MiB  3.00 MiB/s")
  assert.equal(renderLine(snapshot), "x: 3.00 MiB, 3.00 MiB/s")
})

const summary = {
  name: "base",
  path: "/store/base",
  virtualSize: 256 * MiB,
  actualSize: 3 * MiB,
  durationMs: 12345,
  steps: [{ index: 1, text: "FROM scratch", durationMs: 0 }],
}

const pulledImage = {
  present: false,
  name: "alpine",
  path: "/store/alpine",
  format: "qcow2",
  virtualSize: 256 * MiB,
  actualSize: 3 * MiB,
}

/** Every operation of the reporter once, with every optional field somewhere. */
const everything = (reporter: ReporterShape, tick: (ms: number) => void) =>
  Effect.gen(function* () {
    yield* reporter.stepStart(1, 2, "FROM scratch")
    yield* reporter.stepEnd(1, 2, 0)
    yield* reporter.stepStart(2, 2, "RUN make")
    yield* reporter.detail("(host) qemu-img create")
    yield* reporter.output("stdout", new TextEncoder().encode("ok\n"))
    yield* reporter.output("stderr", new Uint8Array([0xff]))
    yield* reporter.stepEnd(2, 2, 10, { cached: true, cacheSource: "registry.example/cache:1" })
    yield* reporter.warn("careful")
    yield* reporter.info("note")
    const progress = yield* reporter.progress("Downloading", 2 * MiB, { phase: "download" })
    tick(1500)
    yield* progress.advance(MiB)
    yield* progress.done
    const unknown = yield* reporter.progress("Converting", undefined)
    yield* unknown.done
    yield* reporter.result(summary)
    yield* reporter.pulled(pulledImage)
    yield* reporter.pulled({ ...pulledImage, present: true })
    yield* reporter.failure("it broke", "StepFailed")
    yield* reporter.failure("it broke again")
  })

Deno.test("every JSON line decodes as a ReportEvent, with no field the schema lacks", () => {
  const { reporter, written, tick } = capture("json")
  Effect.runSync(everything(reporter, tick))
  const decode = Schema.decodeUnknownSync(ReportEvent, { onExcessProperty: "error" })
  const lines = events(written.stdout)
  assert.equal(lines.length, 19)
  for (const line of lines) {
    // Decoding and encoding again gives the very line: the schema describes all of it.
    assert.deepEqual(Schema.encodeSync(ReportEvent)(decode(line)), line)
  }
  const kinds = new Set(lines.map((line) => line.event))
  assert.deepEqual([...kinds].sort(), [
    "detail",
    "error",
    "info",
    "output",
    "progress",
    "result",
    "step-end",
    "step-start",
    "warning",
  ])
  assert.deepEqual(lines.filter((line) => line.event === "result").slice(1), [
    { event: "result", ...pulledImage },
    { event: "result", ...pulledImage, present: true },
  ])
  assert.deepEqual(lines.filter((line) => line.event === "error"), [
    { event: "error", message: "it broke", _tag: "StepFailed" },
    { event: "error", message: "it broke again" },
  ])
  assert.deepEqual(lines.find((line) => line.done && line.label === "Downloading"), {
    event: "progress",
    label: "Downloading",
    bytes: MiB,
    total: 2 * MiB,
    done: true,
    durationMs: 1500,
    phase: "download",
  })
})

Deno.test("a cached step prints Using cache under its step line, and cached in JSON", () => {
  const text = capture("plain")
  Effect.runSync(Effect.all([
    text.reporter.stepStart(2, 3, "RUN apk add openssh"),
    text.reporter.stepEnd(2, 3, 3, { cached: true }),
    text.reporter.stepStart(3, 3, "RUN make"),
    text.reporter.stepEnd(3, 3, 5, { cached: true, cacheSource: "registry.example/cache:1" }),
  ]))
  assert.equal(
    text.written.stdout,
    "Step 2/3 : RUN apk add openssh\n ---> Using cache\n" +
      "Step 3/3 : RUN make\n ---> Using cache (from registry.example/cache:1)\n",
  )
  const json = capture("json")
  Effect.runSync(json.reporter.stepEnd(2, 3, 3, { cached: true }))
  assert.deepEqual(events(json.written.stdout), [
    { event: "step-end", step: 2, total: 3, durationMs: 3, cached: true },
  ])
  assert.match(json.written.stdout, /"cached":true/)
})

Deno.test("the text of a pull says whether the image was fetched or already there", () => {
  const { reporter, written } = capture("plain")
  Effect.runSync(Effect.all([
    reporter.pulled(pulledImage),
    reporter.pulled({ ...pulledImage, present: true }),
  ]))
  assert.equal(
    written.stdout,
    "Pulled 'alpine' (256.00 MiB virtual, 3.00 MiB on disk): /store/alpine\n" +
      "Image 'alpine' is already in the store: /store/alpine\n",
  )
})

Deno.test("the transcripts in docs/progress-events.md are ReportEvents", async () => {
  const docs = await Deno.readTextFile(new URL("../../docs/progress-events.md", import.meta.url))
  const blocks = [...docs.matchAll(/```jsonl\n([\s\S]*?)```/g)].map((match) => match[1]!)
  const lines = blocks.flatMap((block) => block.trimEnd().split("\n"))
  assert.ok(lines.length >= 15, `got ${lines.length} lines`)
  const decode = Schema.decodeUnknownSync(ReportEvent, { onExcessProperty: "error" })
  for (const line of lines) decode(JSON.parse(line))
})
