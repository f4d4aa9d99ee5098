/**
 * The examples of examples/, built as their READMEs say, under TCG, into a temporary store:
 * hello (offline), debian-bootable (which must then boot to a login prompt on its serial
 * console), derived (FROM debian-bootable), debian-extlinux (booted by `transient run`),
 * debian-uefi (booted by `transient run` under OVMF), and an image FROM debian-bootable with
 * GRUB's stock terminal (booted by `transient run`). Results
 * are read back on the host with qemu-img, sfdisk and debugfs, and by booting the images with
 * `transient run`.
 *
 * The Debian examples need mmdebstrap and Debian's mirror (not root); they are
 * skipped only when the mirror cannot be reached.
 */
import assert from "node:assert/strict"
import { makeBusyboxRootfs } from "../../examples/hello/make_rootfs.ts"
import { makeDebianRootfs } from "../../examples/debian-bootable/make_rootfs.ts"
import { mirror, mirrorProblem } from "../support/debian_mirror.ts"
import { ROOT, tcgBuildArgs, transient } from "../support/run_transient.ts"
import * as Host from "../support/host.ts"
import { once } from "../support/once.ts"

const EXAMPLES = `${ROOT}examples`
const BOOT_TIMEOUT_MS = 5 * 60_000
const SHELL_TIMEOUT_MS = 60_000

const work = await Deno.makeTempDir({ prefix: "transient-e2e-examples-" })
const env = { TRANSIENT_IMAGE_BACKEND: `${work}/store`, TRANSIENT_CACHE_DIR: `${work}/cache` }

if (mirrorProblem) console.warn(`Skipping the Debian examples: ${mirrorProblem}`)

const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`

const build = async (example: string, ...args: Array<string>) => {
  const started = performance.now()
  const result = await transient(
    tcgBuildArgs(`${EXAMPLES}/${example}`, ...args, "--name", example),
    {
      env,
    },
  )
  assert.equal(result.code, 0, result.stderr + result.stdout.slice(-4000))
  assert.match(result.stdout, new RegExp(`Successfully built ${example}`))
  console.log(`${example}: built in ${seconds(started)}`)
  return result
}

/** An image as `image ls --json` lists it. */
interface Listed {
  readonly name: string
  readonly path: string
  readonly firmware: string
}

const stored = async (name: string): Promise<Listed> => {
  const listed = await transient(["image", "ls", "--json"], { env })
  const image = (JSON.parse(listed.stdout) as Array<Listed>).find((entry) => entry.name === name)
  assert.ok(image, `${name} is in the store`)
  return image
}

const storedPath = async (name: string): Promise<string> => (await stored(name)).path

/** The root filesystem of a stored image, extracted to a file debugfs reads. */
const rootFilesystem = async (name: string, partition: number) => {
  const disk = await Host.rawDisk(await storedPath(name), `${work}/${name}.raw`)
  const root = disk.partitions[partition - 1]
  assert.ok(root, `${name} has partition ${partition}`)
  const fs = `${work}/${name}-root.img`
  await Host.extractPartition(`${work}/${name}.raw`, root, fs)
  await Deno.remove(`${work}/${name}.raw`)
  return { disk, root, fs }
}

Deno.test("examples/hello builds offline and says hello", async () => {
  await makeBusyboxRootfs(`${EXAMPLES}/hello/rootfs.tar.gz`)
  await build("hello", "--no-network")
  const { fs } = await rootFilesystem("hello", 2)
  const motd = await Host.extCat(fs, "/etc/motd")
  assert.match(motd, /^Hello from an image built by transient\.\nbuilt \d{4}-\d\d-\d\d\n$/)
  assert.equal((await Host.extStat(fs, "/bin/ls")).type, "symlink", "busybox --install ran")
})

Deno.test("transient run stopped with Ctrl-C (SIGINT) mid-boot: status 130, no QEMU, no overlay, the image as it was", async () => {
  // hello has no boot loader: its VM sits in the firmware, which is all this needs.
  await makeBusyboxRootfs(`${EXAMPLES}/hello/rootfs.tar.gz`)
  await build("hello", "--no-network", "--force")
  const image = await storedPath("hello")
  const before = await Host.sha256File(image)
  const run = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}main.ts`, "run", "hello", "--accel", "tcg", "--no-network"],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn()
  const deadline = performance.now() + 60_000
  while ((await Host.qemuProcessesWith("overlay.qcow2")).length === 0) {
    assert.ok(performance.now() < deadline, "the VM started")
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  const interrupted = performance.now()
  run.kill("SIGINT")
  const status = await run.status
  await run.stderr.cancel()
  assert.equal(status.code, 130)
  assert.ok(performance.now() - interrupted < 10_000, "it stopped within 10 s")
  assert.deepEqual(await Host.qemuProcessesWith("overlay.qcow2"), [], "no QEMU is left")
  const leftovers = [...Deno.readDirSync(Deno.env.get("TMPDIR") || "/tmp")]
    .filter((entry) => entry.name.startsWith("transient-vm-") && !isRunning(entry.name))
  assert.deepEqual(leftovers, [], "no overlay directory is left")
  assert.equal(await Host.sha256File(image), before, "the image was not written")
})

/** Type into the serial console once `prompt` shows up; fails after `ms` with the console. */
class SerialConsole {
  #text = ""
  #decoder = new TextDecoder()
  #writer: WritableStreamDefaultWriter<Uint8Array>
  #reading: Promise<void>

  constructor(child: Deno.ChildProcess) {
    this.#writer = child.stdin.getWriter()
    this.#reading = (async () => {
      for await (const chunk of child.stdout) this.#text += this.#decoder.decode(chunk)
    })()
  }

  get text() {
    return this.#text
  }

  async waitFor(pattern: RegExp, ms: number, from = 0): Promise<number> {
    const deadline = performance.now() + ms
    while (performance.now() < deadline) {
      const match = pattern.exec(this.#text.slice(from))
      if (match) return from + match.index + match[0].length
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    throw new Error(
      `no ${pattern} on the serial console within ${ms / 1000} s; it ends with:\n` +
        this.#text.slice(-3000),
    )
  }

  type(text: string) {
    return this.#writer.write(new TextEncoder().encode(text))
  }

  async close() {
    await this.#writer.close().catch(() => {})
    await this.#reading.catch(() => {})
  }
}

/** examples/debian-bootable in the store: built by the first test that needs it. */
const debianBootable = once(async () => {
  const started = performance.now()
  const rootfs = await makeDebianRootfs(`${EXAMPLES}/debian-bootable/rootfs.tar.gz`, mirror)
  console.log(
    `debian-bootable: root filesystem ${rootfs.cached ? "from the cache" : "made by mmdebstrap"} ` +
      `in ${seconds(started)}`,
  )
  await build("debian-bootable")
})

Deno.test({
  name: "examples/debian-bootable builds and boots to a login prompt on its serial console",
  ignore: mirrorProblem !== undefined,
  fn: async () => {
    await debianBootable()

    const { disk, root, fs } = await rootFilesystem("debian-bootable", 1)
    assert.equal(disk.label, "dos")
    assert.equal(root.bootable, true)
    assert.equal((await stored("debian-bootable")).firmware, "bios", "GRUB's boot code in the MBR")
    const uuid = (await Host.tool("blkid", "-o", "value", "-s", "UUID", fs)).trim()
    assert.match(uuid, /^[0-9a-f-]{36}$/)
    const grubCfg = await Host.extCat(fs, "/boot/grub/grub.cfg")
    assert.match(
      grubCfg,
      new RegExp(`linux\\s+/boot/vmlinuz-\\S+ root=UUID=${uuid} .*console=ttyS0`),
    )
    assert.match(grubCfg, /terminal_output serial/)
    await Deno.remove(fs)

    // Through `transient run`, its console on a pipe: what a script sees and types.
    const run = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}main.ts`, "run", "debian-bootable", "--accel", "tcg"],
      env: { NO_COLOR: "1", ...env },
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn()
    const serial = new SerialConsole(run)
    try {
      const started = performance.now()
      const login = await serial.waitFor(/^debian login: /m, BOOT_TIMEOUT_MS)
      console.log(`debian-bootable: boot to the login prompt in ${seconds(started)}`)
      assert.match(serial.text, /GNU GRUB/, "GRUB drew its menu on the serial console")
      await serial.type("root\n")
      const shell = await serial.waitFor(/root@debian:~# $/m, SHELL_TIMEOUT_MS, login)
      await serial.type("echo logged-in-$((6 * 7)) $(findmnt -no SOURCE /)\n")
      await serial.waitFor(/logged-in-42 \/dev\/sda1/, SHELL_TIMEOUT_MS, shell)
    } finally {
      // Stopped as a user stops it: the VM and its overlay go with it.
      run.kill("SIGTERM")
      await run.status
      await serial.close()
    }
    assert.deepEqual(await Host.qemuProcessesWith("overlay.qcow2"), [], "no QEMU is left")
  },
})

Deno.test({
  name: "examples/derived builds FROM debian-bootable with curl and its own motd",
  ignore: mirrorProblem !== undefined,
  fn: async () => {
    await debianBootable()
    await build("derived")
    const { fs } = await rootFilesystem("derived", 1)
    assert.equal((await Host.extStat(fs, "/usr/bin/curl")).type, "regular")
    assert.match(
      await Host.extCat(fs, "/var/lib/dpkg/status"),
      /^Package: curl\nStatus: install ok installed$/m,
    )
    assert.equal(
      await Host.extCat(fs, "/etc/motd"),
      await Deno.readTextFile(`${EXAMPLES}/derived/motd`),
    )
    assert.equal((await Host.extStat(fs, "/boot/grub/grub.cfg")).type, "regular", "still bootable")
  },
})

Deno.test({
  name: "transient run boots debian-bootable to its login prompt, and leaves the image unchanged",
  ignore: mirrorProblem !== undefined,
  fn: async () => {
    await debianBootable()
    const image = await storedPath("debian-bootable")
    const before = await Host.sha256File(image)
    const log = `${work}/run-console.log`
    const started = performance.now()
    const run = await runUntil("debian-bootable", "login:", 120, "--console-log", log)
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stderr, /transient run: matched 'login:'/)
    console.log(`transient run: login prompt in ${seconds(started)}`)
    assert.match(await Deno.readTextFile(log), /debian login:/)
    assert.equal(await Host.sha256File(image), before, "the image was not written")
    assert.deepEqual(await Host.qemuProcessesWith("overlay.qcow2"), [], "no QEMU is left")
    const leftovers = [...Deno.readDirSync(Deno.env.get("TMPDIR") || "/tmp")]
      .filter((entry) => entry.name.startsWith("transient-vm-") && !isRunning(entry.name))
    assert.deepEqual(leftovers, [], "no overlay directory is left")

    // A console that never says what --until waits for: exit 1 with its last lines.
    const timedOut = await runUntil("debian-bootable", "never-printed", 5)
    assert.equal(timedOut.code, 1)
    assert.match(timedOut.stderr, /no console line matched \/never-printed\/m within 5 s/)
    assert.equal(await Host.sha256File(image), before)
  },
})

/**
 * debian-bootable with GRUB as Debian's installer leaves it: the stock /etc/default/grub (no
 * GRUB_TERMINAL, so update-grub picks gfxterm since it finds a font), GRUB reinstalled with it,
 * and the kernel's console on the serial port as users add it, after the screen's.
 */
const STOCK_GRUB_IMAGEFILE = `FROM debian-bootable
RUN rm /etc/default/grub.d/serial.cfg && \\
    sed -i 's/^GRUB_CMDLINE_LINUX=.*/GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200"/' \\
      /etc/default/grub && \\
    grub-install --target=i386-pc /dev/sda && update-grub
`

Deno.test({
  name: "transient run boots a stock GRUB image (default terminal, console=ttyS0 on the kernel " +
    "line) to its login prompt",
  ignore: mirrorProblem !== undefined,
  fn: async () => {
    await debianBootable()
    const context = `${work}/stock-grub`
    await Deno.mkdir(context, { recursive: true })
    await Deno.writeTextFile(`${context}/Imagefile`, STOCK_GRUB_IMAGEFILE)
    const started = performance.now()
    const built = await transient(tcgBuildArgs(context, "--name", "stock-grub"), { env })
    assert.equal(built.code, 0, built.stderr + built.stdout.slice(-4000))
    console.log(`stock-grub: built in ${seconds(started)}`)

    const { fs } = await rootFilesystem("stock-grub", 1)
    const grubCfg = await Host.extCat(fs, "/boot/grub/grub.cfg")
    assert.match(grubCfg, /^terminal_output gfxterm$/m, "GRUB's default, graphical terminal")
    assert.doesNotMatch(grubCfg, /^\s*(serial|terminal_\w+ .*serial)\b/m, "no serial terminal")
    assert.match(grubCfg, /linux\s+\/boot\/vmlinuz-\S+ .*console=tty0 console=ttyS0,115200/)
    await Deno.remove(fs)

    const log = `${work}/stock-grub-console.log`
    const booted = performance.now()
    const run = await runUntil("stock-grub", "login:", 600, "--console-log", log)
    assert.equal(run.code, 0, run.stderr)
    console.log(`stock-grub: login prompt in ${seconds(booted)}`)
    const consoleText = await Deno.readTextFile(log)
    assert.match(consoleText, /^debian login: /m)
    assert.doesNotMatch(
      consoleText,
      /GNU GRUB/,
      "GRUB drew its menu on the screen, not the console",
    )
    assert.deepEqual(await Host.qemuProcessesWith("overlay.qcow2"), [], "no QEMU is left")
  },
})

/** The packages examples/debian-extlinux's root filesystem is made with (its README says so). */
const EXTLINUX_PACKAGES = ["linux-image-amd64", "systemd-sysv", "extlinux", "syslinux-common"]

Deno.test({
  name: "examples/debian-extlinux (the original's recipe: MBR, mbr.bin on /dev/sda, extlinux) " +
    "boots to a login prompt through transient run",
  ignore: mirrorProblem !== undefined,
  fn: async () => {
    const started = performance.now()
    const rootfs = await makeDebianRootfs(
      `${EXAMPLES}/debian-extlinux/rootfs.tar.gz`,
      mirror,
      EXTLINUX_PACKAGES,
    )
    console.log(
      `debian-extlinux: root filesystem ${
        rootfs.cached ? "from the cache" : "made by mmdebstrap"
      } ` +
        `in ${seconds(started)}`,
    )
    await build("debian-extlinux")
    const image = await storedPath("debian-extlinux")
    const { disk, fs } = await rootFilesystem("debian-extlinux", 1)
    assert.equal(disk.partitions[0]?.bootable, true)
    assert.match(await Host.extCat(fs, "/etc/fstab"), /^\/dev\/sda1\s+\/\s+ext4/m)
    assert.match(await Host.extCat(fs, "/boot/extlinux.conf"), /APPEND root=\/dev\/sda1 /)
    assert.equal((await Host.extStat(fs, "/boot/ldlinux.sys")).type, "regular")

    const before = await Host.sha256File(image)
    const booted = performance.now()
    const run = await runUntil("debian-extlinux", "login:", 120)
    assert.equal(run.code, 0, run.stderr)
    console.log(`debian-extlinux: login prompt in ${seconds(booted)}`)
    assert.deepEqual(await Host.qemuProcessesWith("overlay.qcow2"), [], "no QEMU is left")
    assert.equal(await Host.sha256File(image), before, "the image was not written")
  },
})

/** The GPT type of an EFI system partition. */
const ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"

Deno.test({
  name: "examples/debian-uefi (GPT, an ESP, GRUB for EFI at the fallback path) boots to a login " +
    "prompt under OVMF through transient run --firmware uefi",
  ignore: mirrorProblem !== undefined,
  fn: async () => {
    const started = performance.now()
    // debian-bootable's root filesystem, made by its script, as the example's README says.
    const rootfs = await makeDebianRootfs(`${EXAMPLES}/debian-uefi/rootfs.tar.gz`, mirror)
    console.log(
      `debian-uefi: root filesystem ${rootfs.cached ? "from the cache" : "made by mmdebstrap"} ` +
        `in ${seconds(started)}`,
    )
    await build("debian-uefi")
    const { path: image, firmware } = await stored("debian-uefi")
    assert.equal(firmware, "uefi", "an ESP and no BIOS boot code")
    const disk = await Host.rawDisk(image, `${work}/debian-uefi.raw`)
    assert.equal(disk.label, "gpt")
    const [esp, root] = disk.partitions
    assert.ok(esp && root, "an ESP and a root")
    assert.equal(esp.type, ESP_TYPE)
    const espFs = `${work}/debian-uefi-esp.img`
    await Host.extractPartition(`${work}/debian-uefi.raw`, esp, espFs)
    await Deno.remove(`${work}/debian-uefi.raw`)
    // Where firmware with an empty variable store looks: what --removable installs.
    assert.match(await Host.tool("mdir", "-b", "-i", espFs, "::/EFI/BOOT"), /BOOTX64\.EFI/i)
    await Deno.remove(espFs)

    const before = await Host.sha256File(image)
    const log = `${work}/debian-uefi-console.log`
    const booted = performance.now()
    const run = await runUntil(
      "debian-uefi",
      "login:",
      600,
      "--firmware",
      "uefi",
      "--console-log",
      log,
    )
    assert.equal(run.code, 0, run.stderr)
    console.log(`debian-uefi: login prompt under OVMF in ${seconds(booted)}`)
    assert.match(await Deno.readTextFile(log), /^debian login: /m)
    assert.deepEqual(await Host.qemuProcessesWith("overlay.qcow2"), [], "no QEMU is left")
    assert.equal(await Host.sha256File(image), before, "the image was not written")
  },
})

/**
 * Why virt-v2v cannot run here, if it cannot: it, nbdkit and nbdcopy (which Debian's package does
 * not depend on) must be installed, and libguestfs's appliance boots the host's kernel from /boot.
 */
const virtV2vProblem = async (): Promise<string | undefined> => {
  const runs = (tool: string) =>
    new Deno.Command(tool, { args: ["--version"], stdout: "null", stderr: "null" }).output()
      .then((output) => output.success, () => false)
  const tools = [["virt-v2v", "virt-v2v"], ["nbdkit", "nbdkit"], ["nbdcopy", "libnbd-bin"]]
  for (const [tool, pkg] of tools) {
    if (!(await runs(tool!))) return `${tool} is not installed (Debian's ${pkg} package)`
  }
  const kernels = await Array.fromAsync(Deno.readDir("/boot")).then(
    (entries) => entries.filter((entry) => entry.name.startsWith("vmlinuz-")),
    () => [],
  )
  return kernels.length > 0 || Deno.env.get("SUPERMIN_KERNEL")
    ? undefined
    : "libguestfs has no kernel to boot (Debian's linux-image-amd64 package, or SUPERMIN_KERNEL)"
}
const virtV2v = await virtV2vProblem()
if (virtV2v !== undefined) console.warn(`Skipping the OVA import test: ${virtV2v}`)

Deno.test({
  name: "debian-bootable exported as an OVA is accepted by virt-v2v, which inspects the guest",
  ignore: mirrorProblem !== undefined || virtV2v !== undefined,
  fn: async () => {
    await debianBootable()
    const ova = `${work}/debian-bootable.ova`
    const exported = await transient(
      ["image", "export", "--progress", "plain", "debian-bootable", ova],
      { env },
    )
    assert.equal(exported.code, 0, exported.stderr)
    const started = performance.now()
    // libguestfs's appliance straight under QEMU, with TCG like every VM of these tests.
    const imported = await new Deno.Command("virt-v2v", {
      args: ["-i", "ova", ova, "-o", "null"],
      env: {
        LIBGUESTFS_BACKEND: "direct",
        LIBGUESTFS_BACKEND_SETTINGS: "force_tcg",
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output()
    const text = new TextDecoder()
    const output = text.decode(imported.stdout) + text.decode(imported.stderr)
    assert.equal(imported.code, 0, output.slice(-4000))
    assert.match(output, /Finishing off/)
    console.log(`debian-bootable.ova: virt-v2v accepted it in ${seconds(started)}`)
  },
})

/** `transient run IMAGE` under TCG, offline, until `pattern` or `seconds`. */
const runUntil = (image: string, pattern: string, seconds: number, ...extra: Array<string>) =>
  transient(
    [
      "run",
      image,
      "--accel",
      "tcg",
      "--no-network",
      "--until",
      pattern,
      "--timeout",
      String(seconds),
      ...extra,
    ],
    { env },
  )

/** Whether the transient that owns a helper-VM directory (by the pid in its name) still runs. */
const isRunning = (name: string) => {
  const pid = /^transient-vm-(\d+)-/.exec(name)?.[1]
  try {
    return pid !== undefined && Deno.statSync(`/proc/${pid}`).isDirectory
  } catch {
    return false
  }
}

globalThis.addEventListener("unload", () => {
  Deno.removeSync(work, { recursive: true })
})
