/** `transient build` from the command line: --dry-run on the testdata, and usage errors. */
import assert from "node:assert/strict"
import { transient } from "../support/run_transient.ts"

Deno.test("transient build", async (t) => {
  const store = await Deno.makeTempDir()
  const context = await Deno.makeTempDir()
  await Deno.writeTextFile(
    `${context}/Imagefile`,
    "FROM scratch\nDISK 1 GB GPT\nPARTITION 1 FORMAT ext4 MOUNT /\nCOPY present nothere /opt/\n",
  )
  await Deno.writeTextFile(`${context}/present`, "x")
  const env = { TRANSIENT_IMAGE_BACKEND: store }
  // Each run starts a Deno process (about a second), so they run side by side.
  const [dryRun, missingSource, missingBase, badCpus, noName, invalid, noGuest] = await Promise
    .all([
      transient(["build", "--name", "xfs", "--dry-run", "testdata/scratch-xfs"], { env }),
      transient(["build", "--name", "m", "--dry-run", context], { env }),
      transient(["build", "--name", "d", "--dry-run", "testdata/from-image"], { env }),
      transient(["build", "--name", "c", "--cpus", "0", "testdata/scratch-xfs"], { env }),
      transient(["build", "testdata/scratch-xfs"], { env }),
      transient(["image", "build", "--name", "i", "-f", "testdata/invalid/order.Imagefile", "."], {
        env,
      }),
      transient(["build", "--name", "g", "--local", context], {
        env: { ...env, TRANSIENT_GUEST_DIR: `${context}/no-guest` },
      }),
    ])

  await t.step(
    "--dry-run prints every step and the guest commands, and writes nothing",
    () => {
      assert.equal(dryRun.code, 0, dryRun.stderr)
      const lines = dryRun.stdout.split("\n")
      assert.deepEqual(lines.filter((line) => line.startsWith("Step ")), [
        "Step 1/5 : FROM scratch",
        "Step 2/5 : DISK 20 GB MBR",
        'Step 3/5 : PARTITION 1 FORMAT xfs OPTIONS "-m crc=0" MOUNT / FLAGS boot',
        "Step 4/5 : COPY hello.txt /etc/hello.txt",
        "Step 5/5 : RUN cat /etc/hello.txt",
      ])
      const mkfs = lines.indexOf(" ---> mkfs.xfs -f -m crc=0 /dev/sda1")
      assert.ok(mkfs > lines.indexOf(lines.find((l) => l.startsWith("Step 3/5"))!), dryRun.stdout)
      assert.ok(lines.includes(" ---> start=2048, size=41940992, type=83, bootable"))
      assert.ok(lines.some((l) => l.includes("chroot /mnt/root /bin/sh -c 'cat /etc/hello.txt'")))
      assert.deepEqual([...Deno.readDirSync(store)].filter((e) => !e.name.startsWith(".")), [])
    },
  )

  await t.step("a missing COPY source: exit 1, naming it and where the Imagefile names it", () => {
    assert.equal(missingSource.code, 1)
    assert.equal(
      missingSource.stderr,
      `error: ${context}/Imagefile:4:14: COPY/ADD source 'nothere' does not exist in the build directory\n`,
    )
  })

  await t.step("a FROM image that cannot be resolved: exit 1 with the reason", () => {
    assert.equal(missingBase.code, 1)
    assert.match(missingBase.stderr, /^error: No image named 'alpine-3\.13' found in the store/m)
  })

  await t.step("usage errors exit 2", () => {
    assert.equal(badCpus.code, 2)
    assert.equal(badCpus.stderr, "error: --cpus must be at least 1 (got 0)\n")
    assert.equal(noName.code, 2)
    assert.match(noName.stderr, /--name/)
  })

  await t.step("an invalid Imagefile (through `image build`): diagnostics and exit 1", () => {
    assert.equal(invalid.code, 1)
    assert.match(invalid.stderr, /^testdata\/invalid\/order\.Imagefile:\d+:\d+: error: /m)
    assert.equal(invalid.stdout, "")
  })

  await t.step(
    "missing guest artifacts stop the build before it starts, naming the fix",
    async () => {
      assert.equal(noGuest.code, 1)
      assert.match(
        noGuest.stderr,
        /manifest\.json does not exist; build them with `deno task guest`/,
      )
      assert.equal(noGuest.stdout, "")
      assert.deepEqual(
        (await Array.fromAsync(Deno.readDir(context))).map((e) => e.name).sort(),
        ["Imagefile", "present"],
      )
    },
  )

  await Deno.remove(store, { recursive: true })
  await Deno.remove(context, { recursive: true })
})
