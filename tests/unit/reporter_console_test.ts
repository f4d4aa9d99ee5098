/**
 * ReporterConsole over an injected sink and clock: the exact text lines, the JSON events, and
 * how progress is paced on a terminal and in logs.
 */
import assert from "node:assert/strict"
import * as Effect from "effect/Effect"
import {
  type ConsoleSink,
  makeReporterConsole,
  type ProgressMode,
} from "../../src/layers/reporter/reporter_console.ts"
import { renderBar, renderLine } from "../../src/layers/reporter/progress_format.ts"

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
