/** Container image sources in skopeo's transport names, normalised as the container tools do. */
import assert from "node:assert/strict"
import {
  ContainerSource,
  formatContainerSource,
  isContainerSource,
  parseContainerSource,
} from "../../src/domain/container_source.ts"
import { left, right } from "../support/either.ts"

const DIGEST = `sha256:${"0f".repeat(32)}`

const registry = (
  registry: string,
  repository: string,
  tag: string | undefined,
  digest: string | undefined,
  endpoint: string,
) => ContainerSource.Registry({ reference: { registry, repository, tag, digest }, endpoint })

const PARSED: ReadonlyArray<readonly [string, ContainerSource]> = [
  // Docker Hub: library/ for official images, latest when no tag, served by registry-1.
  [
    "docker://debian",
    registry("docker.io", "library/debian", "latest", undefined, "registry-1.docker.io"),
  ],
  [
    "docker://debian:bookworm",
    registry("docker.io", "library/debian", "bookworm", undefined, "registry-1.docker.io"),
  ],
  [
    "docker://docker.io/debian",
    registry("docker.io", "library/debian", "latest", undefined, "registry-1.docker.io"),
  ],
  [
    "docker://index.docker.io/debian",
    registry("docker.io", "library/debian", "latest", undefined, "registry-1.docker.io"),
  ],
  [
    "docker://bitnami/redis:7",
    registry("docker.io", "bitnami/redis", "7", undefined, "registry-1.docker.io"),
  ],
  [
    `docker://debian@${DIGEST}`,
    registry("docker.io", "library/debian", undefined, DIGEST, "registry-1.docker.io"),
  ],
  // A first component with '.', ':' or equal to localhost is a registry, served by itself.
  [
    "docker://quay.io/fedora/fedora:40",
    registry("quay.io", "fedora/fedora", "40", undefined, "quay.io"),
  ],
  ["docker://localhost/base", registry("localhost", "base", "latest", undefined, "localhost")],
  [
    "docker://127.0.0.1:5000/team/base:v1",
    registry("127.0.0.1:5000", "team/base", "v1", undefined, "127.0.0.1:5000"),
  ],
  [
    "docker://registry:5000/base",
    registry("registry:5000", "base", "latest", undefined, "registry:5000"),
  ],
  // Without '.', ':' or localhost, the first component is a Docker Hub namespace.
  [
    "docker://myregistry/base",
    registry("docker.io", "myregistry/base", "latest", undefined, "registry-1.docker.io"),
  ],
  // Archives and layouts: paths in the build context, normalised.
  ["oci-archive:images/base.tar", ContainerSource.OciArchive({ path: "images/base.tar" })],
  ["oci-archive:./a//b.tar", ContainerSource.OciArchive({ path: "a/b.tar" })],
  ["docker-archive:saved.tar", ContainerSource.DockerArchive({ path: "saved.tar" })],
  ["oci:layout", ContainerSource.OciLayout({ directory: "layout", tag: undefined })],
  ["oci:layout:v1.2", ContainerSource.OciLayout({ directory: "layout", tag: "v1.2" })],
  ["oci:.:latest", ContainerSource.OciLayout({ directory: ".", tag: "latest" })],
  [
    "oci:out/layout:team/base:1",
    ContainerSource.OciLayout({ directory: "out/layout", tag: "team/base:1" }),
  ],
]

for (const [text, expected] of PARSED) {
  Deno.test(`container source: ${text}`, () => {
    assert.deepEqual(right(parseContainerSource(text)), expected)
  })
}

const REFUSED: ReadonlyArray<readonly [string, RegExp]> = [
  ["docker:debian", /needs two slashes/],
  ["docker://", /names no image/],
  ["docker://Debian", /not an image reference: 'Debian' is not a repository name component/],
  ["docker://debian:", /not an image reference: '' is not a valid tag/],
  ["docker://debian@sha256:abc", /not an image reference: 'sha256:abc' is not a sha256:HEX digest/],
  [`docker://debian:12@${DIGEST}`, /both a tag and a digest/],
  ["docker:// debian", /spaces/],
  ["oci-archive:", /names no path/],
  ["oci-archive:/tmp/base.tar", /absolute paths are not allowed/],
  ["oci-archive:../base.tar", /leaves the build directory/],
  ["docker-archive:.", /names the build directory/],
  ["docker-archive:saved.tar:debian:12", /image inside the archive/],
  ["oci:", /names no path/],
  ["oci:../layout", /leaves the build directory/],
  ["oci:layout:", /'' after ':'/],
  ["oci:layout:-bad", /'-bad' after ':'/],
  ["containers-storage:debian", /names no container transport/],
]

for (const [text, problem] of REFUSED) {
  Deno.test(`container source refused: ${text}`, () => {
    const why = left(parseContainerSource(text))
    assert.match(why, problem)
    assert.ok(why.includes(`'${text}'`), `the problem quotes the source: ${why}`)
  })
}

Deno.test("isContainerSource: the four transports, and files of the build context are not", () => {
  const cases: ReadonlyArray<readonly [string, boolean]> = [
    ["docker://debian", true],
    ["docker:debian", true],
    ["oci-archive:a.tar", true],
    ["docker-archive:a.tar", true],
    ["oci:layout", true],
    ["rootfs.tar.xz", false],
    ["docker/Dockerfile", false],
    ["oci/layout", false],
    ["./docker://x", false],
  ]
  for (const [text, expected] of cases) assert.equal(isContainerSource(text), expected, text)
})

Deno.test("formatContainerSource writes back what parses to the same source", () => {
  for (const [text] of PARSED) {
    const parsed = right(parseContainerSource(text))
    const written = formatContainerSource(parsed)
    assert.deepEqual(right(parseContainerSource(written)), parsed, written)
  }
  assert.equal(
    formatContainerSource(right(parseContainerSource("docker://debian"))),
    "docker://docker.io/library/debian:latest",
  )
})
