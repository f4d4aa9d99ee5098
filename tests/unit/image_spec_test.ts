import assert from "node:assert/strict"
import * as Either from "effect/Either"
import {
  decodeImageName,
  encodeImageName,
  type ImageSpec,
  parseImageSpec,
  parseVagrantBox,
} from "../../src/domain/image_spec.ts"
import { formatBytes } from "../../src/domain/byte_size.ts"

// The original transient's storage-name cases.
const ENCODINGS: ReadonlyArray<readonly [string, string]> = [
  ["simple", "simple"],
  ["with space", "with%20space"],
  ["with-dash", "with%2Ddash"],
  ["with/slash", "with%2Fslash"],
  ["generic/alpine38:v3.0.2", "generic%2Falpine38%3Av3.0.2"],
  ["unreserved_.~", "unreserved_.~"],
  ["é✓", "%C3%A9%E2%9C%93"],
]

Deno.test("image names encode as the original does", () => {
  for (const [name, encoded] of ENCODINGS) assert.deepEqual(encodeImageName(name), encoded)
})

Deno.test("store file names decode to the image names", () => {
  for (const [name, encoded] of ENCODINGS) assert.deepEqual(decodeImageName(encoded), name)
  // Like Python's unquote: a stray '%' stays as it is, lower-case hex decodes too.
  assert.deepEqual(decodeImageName("100%"), "100%")
  assert.deepEqual(decodeImageName("a%2fb"), "a/b")
})

const parsed = (text: string): ImageSpec => {
  const result = parseImageSpec(text)
  if (Either.isLeft(result)) throw new Error(`unexpected failure: ${result.left.message}`)
  return result.right
}

const failure = (text: string): string => {
  const result = parseImageSpec(text)
  if (Either.isRight(result)) throw new Error(`'${text}' parsed: ${JSON.stringify(result.right)}`)
  return result.left.message
}

Deno.test("a bare name is looked up in the store, else treated as a Vagrant box", () => {
  assert.deepEqual(parsed("noproto"), { name: "noproto", source: { _tag: "Named" } })
  assert.deepEqual(parsed("generic/alpine38:v3.0.2").source, { _tag: "Named" })
  assert.deepEqual(parseVagrantBox("generic/alpine38:v3.0.2"), {
    box: "generic/alpine38",
    version: "3.0.2",
  })
  assert.deepEqual(parseVagrantBox("generic/alpine38:3.0.2")?.version, "3.0.2")
  assert.deepEqual(parseVagrantBox("generic/alpine38"), undefined)
  assert.deepEqual(parseVagrantBox("alpine38:1.0"), undefined)
})

Deno.test("specs name their source protocol", () => {
  assert.deepEqual(parsed("noproto,vagrant=centos/7:2004.01"), {
    name: "noproto",
    source: { _tag: "Vagrant", box: { box: "centos/7", version: "2004.01" } },
  })
  assert.deepEqual(
    parsed("alpine,http=https://example.test/releases/5/alpine-3.13.qcow2.xz").source,
    { _tag: "Http", url: "https://example.test/releases/5/alpine-3.13.qcow2.xz" },
  )
  assert.deepEqual(parsed("a,https=http://127.0.0.1:8080/x.img").source, {
    _tag: "Http",
    url: "http://127.0.0.1:8080/x.img",
  })
  assert.deepEqual(parsed("noproto,file=/path/to/file").source, {
    _tag: "File",
    path: "/path/to/file",
  })
  // Protocols are case-insensitive; a file path may contain '=' and ','.
  assert.deepEqual(parsed("n,FILE=/a=b,c").source, { _tag: "File", path: "/a=b,c" })
})

Deno.test("a sha256 checksum may follow any spec", () => {
  const hex = "AB".repeat(32)
  assert.deepEqual(parsed(`img,http=http://h/x.img,sha256=${hex}`), {
    name: "img",
    source: { _tag: "Http", url: "http://h/x.img" },
    sha256: hex.toLowerCase(),
  })
  assert.deepEqual(parsed(`img,sha256=${hex}`).source, { _tag: "Named" })
  assert.match(failure("img,http=http://h/x,sha256=abc"), /Invalid sha256 checksum 'abc'/)
})

Deno.test("malformed specs fail with the original's messages", () => {
  assert.deepEqual(failure(",sometext"), "Invalid image spec ',sometext'")
  assert.deepEqual(failure(""), "Invalid image spec ''")
  assert.deepEqual(failure("name,novalue"), "Invalid image spec 'name,novalue'")
  assert.deepEqual(
    failure("name,unknownspec=foobar"),
    "Unknown image source protocol 'unknownspec'",
  )
  assert.match(failure("a,http=ftp://host/x"), /Invalid URL 'ftp:\/\/host\/x'/)
  assert.match(failure("a,vagrant=centos/7"), /expected owner\/box:version/)
  assert.match(failure(".hidden,file=/x"), /may not start with '\.'/)
})

Deno.test("sizes read like the original's", () => {
  assert.deepEqual(formatBytes(10000), "9.77 KiB")
  assert.deepEqual(formatBytes(20 * 2 ** 30), "20.00 GiB")
  assert.deepEqual(formatBytes(512), "512.00 B")
  assert.deepEqual(formatBytes(3 * 2 ** 20 + 2 ** 19), "3.50 MiB")
})
