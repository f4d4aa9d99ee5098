/** Platforms as containerd normalises them, and the index entry that serves one. */
import assert from "node:assert/strict"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import {
  DEFAULT_PLATFORM,
  formatPlatform,
  type IndexPlatform,
  parsePlatform,
  selectPlatformEntry,
} from "../../src/domain/platform.ts"
import { Descriptor } from "../../src/domain/oci_manifest.ts"
import { left, right } from "../support/either.ts"

const PARSED: ReadonlyArray<readonly [string, string]> = [
  ["linux/amd64", "linux/amd64"],
  ["linux/x86_64", "linux/amd64"],
  ["linux/x86-64", "linux/amd64"],
  ["Linux/AMD64", "linux/amd64"],
  ["linux/amd64/v1", "linux/amd64"],
  ["linux/amd64/v3", "linux/amd64/v3"],
  ["linux/aarch64", "linux/arm64"],
  ["linux/arm64/v8", "linux/arm64"],
  ["linux/aarch64/8", "linux/arm64"],
  ["linux/arm64/v9", "linux/arm64/v9"],
  ["linux/arm", "linux/arm/v7"],
  ["linux/armhf", "linux/arm/v7"],
  ["linux/armel", "linux/arm/v6"],
  ["linux/arm/6", "linux/arm/v6"],
  ["linux/arm/v5", "linux/arm/v5"],
  ["linux/i386", "linux/386"],
  ["linux/riscv64", "linux/riscv64"],
  ["linux/s390x", "linux/s390x"],
  ["macos/arm64", "darwin/arm64"],
]

for (const [text, canonical] of PARSED) {
  Deno.test(`platform ${text} is ${canonical}`, () => {
    assert.equal(formatPlatform(right(parsePlatform(text))), canonical)
  })
}

Deno.test("platforms that are not OS/ARCH[/VARIANT] are refused, with the expected form", () => {
  for (const text of ["linux", "linux/", "/amd64", "linux/amd64/v3/x", "linux/amd 64", ""]) {
    assert.match(left(parsePlatform(text)), /is not a platform: expected OS\/ARCH/, text)
  }
})

Deno.test("the default platform is linux/amd64", () => {
  assert.equal(formatPlatform(DEFAULT_PLATFORM), "linux/amd64")
})

const entry = (digest: string, platform?: IndexPlatform) => ({
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest,
  size: 1,
  ...(platform === undefined ? {} : { platform }),
})

/** As Docker Hub serves debian: several platforms, arm64 with its v8, BuildKit attestations. */
const INDEX = [
  entry("amd64", { os: "linux", architecture: "amd64" }),
  entry("attestation", { os: "unknown", architecture: "unknown" }),
  entry("armv5", { os: "linux", architecture: "arm", variant: "v5" }),
  entry("armv7", { os: "linux", architecture: "arm", variant: "v7" }),
  entry("arm64", { os: "linux", architecture: "arm64", variant: "v8" }),
  entry("no-platform"),
  entry("amd64-again", { os: "linux", architecture: "amd64" }),
]

const SELECTED: ReadonlyArray<readonly [string, string]> = [
  ["linux/amd64", "amd64"],
  ["linux/x86_64", "amd64"],
  ["linux/arm64", "arm64"],
  ["linux/aarch64", "arm64"],
  ["linux/arm64/v8", "arm64"],
  ["linux/arm", "armv7"],
  ["linux/arm/v5", "armv5"],
]

for (const [platform, digest] of SELECTED) {
  Deno.test(`an index's entry for ${platform}`, () => {
    assert.equal(right(selectPlatformEntry(INDEX, right(parsePlatform(platform)))).digest, digest)
  })
}

Deno.test("a platform the index lacks: the problem lists those it has, once each", () => {
  assert.equal(
    left(selectPlatformEntry(INDEX, right(parsePlatform("linux/riscv64")))),
    "the image has no entry for linux/riscv64; it has linux/amd64, linux/arm/v5, linux/arm/v7, " +
      "linux/arm64",
  )
  assert.equal(
    left(selectPlatformEntry([entry("x")], DEFAULT_PLATFORM)),
    "the image has no entry for linux/amd64, and names the platform of none",
  )
  // An arm64 image is no substitute for amd64, nor arm/v6 for arm/v7.
  assert.match(left(selectPlatformEntry([INDEX[4]!], DEFAULT_PLATFORM)), /it has linux\/arm64$/)
  assert.ok(Either.isLeft(selectPlatformEntry(INDEX, right(parsePlatform("linux/arm/v6")))))
})

Deno.test("an index decoded with the Descriptor schema keeps each entry's variant", () => {
  const decoded = INDEX.map((raw) => Schema.decodeUnknownSync(Descriptor)(raw))
  assert.equal(
    right(selectPlatformEntry(decoded, right(parsePlatform("linux/arm/v5")))).digest,
    "armv5",
  )
})
