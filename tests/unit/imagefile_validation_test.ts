/** Validation: the original transient's cases with its messages, and every rule added since. */
import assert from "node:assert/strict"
import { analyzeImagefile, type Diagnostic, hasErrors } from "../../src/domain/imagefile/mod.ts"

/** Like the original's tests: the Imagefile is indented in the test source. */
const dedent = (text: string): string => text.split("\n").map((line) => line.trimStart()).join("\n")

const check = (text: string) => analyzeImagefile(dedent(text), "Imagefile").diagnostics

const errors = (text: string) => check(text).filter((d) => d.severity === "error")

const where = (d: Diagnostic) => ({
  code: d.code,
  line: d.line,
  column: d.column,
  endLine: d.endLine,
  endColumn: d.endColumn,
})

// ---------------------------------------------------------------------------------------------
// The original transient's test cases (test/unit/test_build.py), each with its message.

const VALID: ReadonlyArray<readonly [string, string]> = [
  ["basic imagefile with only a source", "FROM image_source\n"],
  ["basic imagefile from scratch", "FROM scratch\nDISK 10Gb GPT\nPARTITION 1 MOUNT /\n"],
  ["imagefile with no final newline", "FROM image_source"],
  [
    "Alpine imagefile",
    `
    FROM scratch
    DISK 2gb GPT
    PARTITION 1 SIZE 300MB FLAGS bios_grub
    PARTITION 2 FORMAT ext2 MOUNT /

    ADD alpine-3.13.tar.xz /
    `,
  ],
]

for (const [name, text] of VALID) {
  Deno.test(`valid: ${name}`, () => {
    const diagnostics = check(text)
    assert.equal(hasErrors(diagnostics), false, JSON.stringify(diagnostics))
  })
}

const INVALID: ReadonlyArray<readonly [string, string, string, number]> = [
  ["an empty file", "", "Exactly one FROM instruction must appear per Imagefile", 1],
  [
    "two FROMs",
    "FROM somesource\nFROM othersource\n",
    "Exactly one FROM instruction must appear per Imagefile",
    2,
  ],
  [
    "FROM scratch alone",
    "FROM scratch",
    "Exactly one DISK instruction must appear in images built from scratch",
    1,
  ],
  [
    "DISK without PARTITION",
    "FROM scratch\nDISK 1GB GPT\n",
    "At least one PARTITION instruction must appear in images built from scratch",
    2,
  ],
  [
    "no partition mounted at /",
    "FROM scratch\nDISK 1GB GPT\nPARTITION 1\n",
    "At least one PARTITION instruction must mount at /",
    2,
  ],
  [
    "DISK on a non-scratch image",
    "FROM someimage\nDISK 1GB GPT\n",
    "DISK and PARTITION instructions can only appear on images built from scratch",
    2,
  ],
  [
    "ADD before FROM",
    "ADD foo /\nFROM someimage\n",
    "FROM instruction must appear before any other instructions",
    2,
  ],
  [
    "FROM, ADD, DISK",
    "FROM scratch\nADD foo /\nDISK 1GB GPT\nPARTITION 1 MOUNT /\n",
    "DISK instruction must appear immediately after FROM instruction",
    3,
  ],
  [
    "DISK, ADD, PARTITION",
    "FROM scratch\nDISK 1GB GPT\nADD foo /\nPARTITION 1 MOUNT /\n",
    "PARTITION instructions must appear immediately after DISK instruction",
    4,
  ],
]

for (const [name, text, message, line] of INVALID) {
  Deno.test(`invalid: ${name}`, () => {
    const found = errors(text).filter((d) => d.message === message)
    assert.equal(found.length, 1, `${message}\nnot in ${JSON.stringify(check(text), null, 1)}`)
    assert.equal(found[0]?.line, line)
    assert.equal(found[0]?.column, 1)
  })
}

Deno.test("FROM scratch alone reports both missing DISK and missing PARTITION", () => {
  assert.deepEqual(errors("FROM scratch").map((d) => d.code), [
    "disk-missing",
    "partition-missing",
  ])
})

Deno.test("every problem is reported, in reading order, not only the first", () => {
  const found = errors(`
    ADD /abs /
    FROM someimage
    FROM other
    DISK 1GB GPT
    PARTITION 1 MOUNT /
    COPY ../up /x
  `)
  assert.deepEqual(found.map((d) => [d.line, d.code]), [
    [2, "source-absolute"],
    [3, "from-not-first"],
    [4, "from-count"],
    [5, "disk-not-scratch"],
    [6, "disk-not-scratch"],
    [7, "source-escapes"],
  ])
})

Deno.test("a second DISK is reported once, at its line", () => {
  const found = errors("FROM scratch\nDISK 1GB GPT\nDISK 2GB GPT\nPARTITION 1 MOUNT /\n")
  assert.deepEqual(found.map((d) => [d.line, d.message]), [
    [3, "Only one DISK instruction can appear per Imagefile"],
  ])
})

// ---------------------------------------------------------------------------------------------
// The rules the original lacked, each with the place it reports.

const scratch = (table: string, ...partitions: ReadonlyArray<string>) =>
  ["FROM scratch", `DISK 1 GB ${table}`, ...partitions].join("\n")

Deno.test("partitions are numbered 1..n in order, without gaps or repeats", () => {
  const found = errors(scratch(
    "GPT",
    "PARTITION 1 SIZE 10MB",
    "PARTITION 3 SIZE 10MB",
    "PARTITION 3 SIZE 10MB",
    "PARTITION  2 FORMAT ext4 MOUNT /",
  ))
  assert.deepEqual(found.map(where), [
    { code: "partition-number", line: 4, column: 11, endLine: 4, endColumn: 12 },
    { code: "partition-number", line: 6, column: 12, endLine: 6, endColumn: 13 },
  ])
  assert.equal(
    found[0]?.message,
    "partition number 3 is out of order: expected 2 (partitions are numbered 1, 2, 3... " +
      "without gaps or repeats)",
  )
  assert.match(found[1]?.message ?? "", /number 2 is out of order: expected 4/)
})

Deno.test("only the last partition may omit SIZE", () => {
  const found = errors(scratch("GPT", "PARTITION 1 FORMAT ext4 MOUNT /", "PARTITION 2 SIZE 1MB"))
  assert.deepEqual(found.map(where), [
    { code: "partition-size-missing", line: 3, column: 1, endLine: 3, endColumn: 32 },
  ])
  assert.match(found[0]!.message, /only the last partition may omit SIZE/)
})

Deno.test("sizes fit the disk: 1 MiB at the start, 33 sectors of backup GPT at the end", () => {
  // 1 GiB GPT: 1024 MiB - 1 MiB - 33 * 512 bytes usable, so 1023 MiB does not fit...
  const gpt = errors(scratch("GPT", "PARTITION 1 SIZE 1023 MB FORMAT ext4 MOUNT /"))
  assert.deepEqual(gpt.map(where), [
    { code: "partition-too-large", line: 3, column: 18, endLine: 3, endColumn: 25 },
  ])
  assert.equal(
    gpt[0]?.message,
    "partition 1 does not fit: the partitions up to it need 1023 MiB but the 1 GB GPT disk " +
      "has 1022.98 MiB usable (1 MiB at the start and 33 sectors at the end for the backup GPT " +
      "are kept free)",
  )
  // ...1022 MiB does, and so do 1023 MiB on MBR, which has no backup table.
  assert.deepEqual(errors(scratch("GPT", "PARTITION 1 SIZE 1022 MB FORMAT ext4 MOUNT /")), [])
  assert.deepEqual(errors(scratch("MBR", "PARTITION 1 SIZE 1023 MB FORMAT ext4 MOUNT /")), [])
  assert.deepEqual(
    errors(scratch("MBR", "PARTITION 1 SIZE 1024 MB FORMAT ext4 MOUNT /")).map((d) => d.code),
    ["partition-too-large"],
  )
  // The sum counts: the second partition is the one that overflows.
  const sum = errors(scratch(
    "MBR",
    "PARTITION 1 SIZE 600MB FORMAT ext4 MOUNT /",
    "PARTITION 2 SIZE 500MB FORMAT ext4 MOUNT /home",
  ))
  assert.deepEqual(sum.map(where), [
    { code: "partition-too-large", line: 4, column: 18, endLine: 4, endColumn: 23 },
  ])
  // A SIZE-less last partition needs room left.
  const full = errors(scratch(
    "MBR",
    "PARTITION 1 SIZE 1023MB FORMAT ext4 MOUNT /",
    "PARTITION 2 FORMAT ext4 MOUNT /home",
  ))
  assert.deepEqual(full.map(where), [
    { code: "disk-full", line: 4, column: 1, endLine: 4, endColumn: 36 },
  ])
})

Deno.test("an xfs partition below mkfs.xfs's 300 MiB minimum is refused where it is sized", () => {
  const sized = errors(scratch("GPT", "PARTITION 1 SIZE 299 MB FORMAT xfs MOUNT /"))
  assert.deepEqual(sized.map(where), [
    { code: "filesystem-too-small", line: 3, column: 18, endLine: 3, endColumn: 24 },
  ])
  assert.equal(
    sized[0]?.message,
    "partition 1 is 299 MiB, but mkfs.xfs refuses filesystems smaller than 300 MiB",
  )
  assert.deepEqual(errors(scratch("GPT", "PARTITION 1 SIZE 300 MB FORMAT xfs MOUNT /")), [])
  // A SIZE-less partition is measured by what the disk leaves it: 127 MiB of a 128 MB disk.
  const rest = errors("FROM scratch\nDISK 128 MB MBR\nPARTITION 1 FORMAT xfs MOUNT /\n")
  assert.deepEqual(rest.map(where), [
    { code: "filesystem-too-small", line: 3, column: 20, endLine: 3, endColumn: 23 },
  ])
  assert.deepEqual(errors("FROM scratch\nDISK 128 MB MBR\nPARTITION 1 FORMAT ext4 MOUNT /\n"), [])
})

Deno.test("sizes are greater than zero", () => {
  const found = errors("FROM scratch\nDISK 0 GB GPT\nPARTITION 1 SIZE 0MB FORMAT ext4 MOUNT /\n")
  assert.deepEqual(found.map(where), [
    { code: "size-zero", line: 2, column: 6, endLine: 2, endColumn: 10 },
    { code: "size-zero", line: 3, column: 18, endLine: 3, endColumn: 21 },
  ])
})

Deno.test("MBR holds at most 4 partitions and has no bios_grub", () => {
  const five = [1, 2, 3, 4, 5].map((n) =>
    `PARTITION ${n} SIZE 10MB${n === 1 ? " FORMAT ext4 MOUNT /" : ""}`
  )
  const found = errors(scratch("MBR", ...five))
  assert.deepEqual(found.map(where), [
    { code: "mbr-partition-count", line: 7, column: 1, endLine: 7, endColumn: 22 },
  ])
  assert.equal(
    found[0]?.message,
    "an MBR partition table holds at most 4 partitions (use GPT for more)",
  )
  assert.deepEqual(errors(scratch("GPT", ...five)), [])

  const grub = errors(
    scratch("MBR", "PARTITION 1 SIZE 1MB FLAGS boot,bios_grub", "PARTITION 2 MOUNT /"),
  )
  assert.deepEqual(grub.map(where), [
    { code: "mbr-bios-grub", line: 3, column: 33, endLine: 3, endColumn: 42 },
  ])
})

Deno.test("MOUNT paths are absolute and unique", () => {
  const found = errors(scratch(
    "GPT",
    "PARTITION 1 SIZE 100MB FORMAT ext4 MOUNT /",
    "PARTITION 2 SIZE 100MB FORMAT ext4 MOUNT boot",
    "PARTITION 3 SIZE 100MB FORMAT ext4 MOUNT /home/",
    "PARTITION 4 FORMAT ext4 MOUNT //home",
  ))
  assert.deepEqual(found.map(where), [
    { code: "mount-not-absolute", line: 4, column: 42, endLine: 4, endColumn: 46 },
    { code: "mount-duplicate", line: 6, column: 31, endLine: 6, endColumn: 37 },
  ])
  assert.equal(found[0]?.message, "mount point 'boot' must be an absolute path (starting with /)")
  assert.equal(found[1]?.message, "mount point '//home' is already used by partition 3")
})

Deno.test("supported formats: ext2, ext3, ext4, xfs, vfat and swap", () => {
  for (const fs of ["ext2", "ext3", "ext4", "xfs", "vfat", "XFS"]) {
    assert.deepEqual(errors(scratch("GPT", `PARTITION 1 FORMAT ${fs} MOUNT /`)), [], fs)
  }
  assert.deepEqual(
    errors(scratch("GPT", "PARTITION 1 SIZE 100MB FORMAT swap", "PARTITION 2 FORMAT ext4 MOUNT /")),
    [],
  )
  const found = errors(scratch("GPT", "PARTITION 1 FORMAT btrfs MOUNT /"))
  assert.deepEqual(found.map(where), [
    { code: "unsupported-format", line: 3, column: 20, endLine: 3, endColumn: 25 },
  ])
  assert.equal(
    found[0]?.message,
    "Unsupported partition format 'btrfs' (expected ext2, ext3, ext4, xfs, vfat or swap)",
  )
  assert.equal(
    errors(scratch("GPT", "PARTITION 1 FORMAT ext5 MOUNT /"))[0]?.message,
    "Unsupported partition format 'ext5' (did you mean 'ext2'?)",
  )
  assert.deepEqual(
    errors(scratch("GPT", "PARTITION 1 FORMAT swap MOUNT /")).map((d) => d.code),
    ["swap-mount"],
  )
})

Deno.test("OPTIONS only after FORMAT", () => {
  const found = errors(scratch("GPT", 'PARTITION 1 OPTIONS "-m crc=0" FORMAT xfs MOUNT /'))
  assert.deepEqual(found.map(where), [
    { code: "options-without-format", line: 3, column: 13, endLine: 3, endColumn: 20 },
  ])
  const ok = analyzeImagefile(
    scratch("GPT", 'PARTITION 1 FORMAT xfs MOUNT / OPTIONS "-m crc=0"'),
    "Imagefile",
  )
  assert.deepEqual(ok.diagnostics, [])
  const partition = ok.imagefile.instructions[2]
  assert.deepEqual(
    partition?._tag === "Partition" && partition.format?.options?.value,
    ["-m", "crc=0"],
  )
})

Deno.test("each PARTITION clause at most once", () => {
  const found = errors(scratch("GPT", "PARTITION 1 MOUNT / FORMAT ext4 mount /boot"))
  assert.deepEqual(found.map(where), [
    { code: "duplicate-clause", line: 3, column: 33, endLine: 3, endColumn: 38 },
  ])
  assert.equal(
    found[0]?.message,
    "MOUNT is given more than once in this PARTITION (each clause may appear once)",
  )
})

Deno.test("flags are boot, efi and bios_grub", () => {
  const found = errors(scratch("GPT", "PARTITION 1 FORMAT ext4 MOUNT / FLAGS Boot,esp,boto"))
  assert.deepEqual(found.map(where), [
    { code: "unknown-flag", line: 3, column: 44, endLine: 3, endColumn: 47 },
    { code: "unknown-flag", line: 3, column: 48, endLine: 3, endColumn: 52 },
  ])
  assert.equal(found[0]?.message, "unknown partition flag 'esp' (expected boot, efi or bios_grub)")
  assert.equal(found[1]?.message, "unknown partition flag 'boto' (did you mean 'boot'?)")
  assert.deepEqual(
    errors(scratch("GPT", "PARTITION 1 FORMAT ext4 MOUNT / FLAGS efi,bios_grub")).map((d) =>
      d.code
    ),
    ["conflicting-flags"],
  )
})

Deno.test("COPY/ADD sources are not absolute and do not escape the build directory", () => {
  const found = errors(
    "FROM x\nCOPY ok /etc/passwd a/../../b /dest\nADD ../x.tar /\nADD a/../b /\n",
  )
  assert.deepEqual(found.map(where), [
    { code: "source-absolute", line: 2, column: 9, endLine: 2, endColumn: 20 },
    { code: "source-escapes", line: 2, column: 21, endLine: 2, endColumn: 30 },
    { code: "source-escapes", line: 3, column: 5, endLine: 3, endColumn: 13 },
  ])
  assert.equal(
    found[0]?.message,
    "COPY source '/etc/passwd' must be relative to the build directory, not absolute",
  )
  assert.equal(found[2]?.message, "ADD source '../x.tar' leaves the build directory")
})

Deno.test("COPY refuses container images, at the source, with a hint to use ADD", () => {
  const found = errors(
    "FROM x\nCOPY docker://debian:bookworm /\nCOPY a oci-archive:b.tar /d\n" +
      "COPY docker-archive:s.tar oci:layout:v1 /\nCOPY docker:debian /\n",
  )
  assert.deepEqual(found.map(where), [
    { code: "copy-container-image", line: 2, column: 6, endLine: 2, endColumn: 30 },
    { code: "copy-container-image", line: 3, column: 8, endLine: 3, endColumn: 25 },
    { code: "copy-container-image", line: 4, column: 6, endLine: 4, endColumn: 26 },
    { code: "copy-container-image", line: 4, column: 27, endLine: 4, endColumn: 40 },
    { code: "copy-container-image", line: 5, column: 6, endLine: 5, endColumn: 19 },
  ])
  assert.equal(
    found[0]?.message,
    "COPY copies files of the build directory, not the container image " +
      "'docker://debian:bookworm'; use ADD to unpack it",
  )
  // The rule is COPY's: ADD of an image is left to ADD's own rules, and files stay files.
  const codes = check("FROM x\nADD docker://debian:bookworm /\nCOPY docker/Dockerfile /\n")
    .map((d) => d.code)
  assert.ok(!codes.includes("copy-container-image"), JSON.stringify(codes))
})

Deno.test("ADD takes container images by their transports, and says what is wrong with one at its place", () => {
  assert.deepEqual(
    errors(
      "FROM x\nADD docker://debian:bookworm /\nADD oci-archive:img.tar docker-archive:d.tar /\n" +
        "ADD oci:layout:v1 /\n",
    ),
    [],
  )
  const found = errors(
    "FROM x\nADD docker:debian /\nADD oci-archive:../up.tar /\nADD docker://a@b:c /\n",
  )
  assert.deepEqual(found.map(where), [
    { code: "container-source", line: 2, column: 5, endLine: 2, endColumn: 18 },
    { code: "container-source", line: 3, column: 5, endLine: 3, endColumn: 26 },
    { code: "container-source", line: 4, column: 5, endLine: 4, endColumn: 19 },
  ])
  assert.equal(
    found[0]?.message,
    "'docker:debian' needs two slashes after the transport: docker://NAME",
  )
})

Deno.test("warnings do not make an Imagefile invalid", () => {
  const diagnostics = check("FROM x\nCOPY a etc/a\n")
  assert.deepEqual(diagnostics.map((d) => [d.severity, d.code, d.line, d.column]), [
    ["warning", "relative-destination", 2, 8],
  ])
  assert.equal(hasErrors(diagnostics), false)
})
