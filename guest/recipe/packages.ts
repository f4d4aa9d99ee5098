/** The Debian packages the helper VM is made of, and refreshing their pins. */
import { type Pin, resolvePins } from "./debs.ts"
import { PINS_FILE } from "./layout.ts"

/** The packages pinned in guest/pins.json (linux-image-amd64 stands for its kernel package). */
export const PACKAGES = [
  "linux-image-amd64",
  "libc6",
  "libgcc-s1",
  "busybox-static",
  "dash",
  "coreutils",
  "util-linux",
  "mount",
  "fdisk",
  "libblkid1",
  "libmount1",
  "libsmartcols1",
  "libuuid1",
  "libfdisk1",
  "libselinux1",
  "libpcre2-8-0",
  "libudev1",
  "libcap-ng0",
  "libcap2",
  "libtinfo6",
  "libsystemd0",
  "libgcrypt20",
  "libgpg-error0",
  "liblz4-1",
  "e2fsprogs",
  "libext2fs2",
  "libcom-err2",
  "libss2",
  "xfsprogs",
  "libinih1",
  "liburcu8",
  "dosfstools",
  "lvm2",
  "dmsetup",
  "libdevmapper1.02.1",
  "libdevmapper-event1.02.1",
  "libaio1",
  "libreadline8",
  "libedit2",
  "libbsd0",
  "libmd0",
  "tar",
  "libacl1",
  "libattr1",
  "libgmp10",
  "gzip",
  "xz-utils",
  "liblzma5",
  "bzip2",
  "libbz2-1.0",
  "zstd",
  "libzstd1",
  "zlib1g",
  "kmod",
  "libkmod2",
  "libssl3",
]

/** Pin the versions apt offers now into guest/pins.json, and say which changed. */
export const updatePins = async (): Promise<void> => {
  const before = await Deno.readTextFile(PINS_FILE).then((text) => JSON.parse(text).packages)
    .catch(() => []) as ReadonlyArray<Pin>
  const pins = await resolvePins(PACKAGES)
  await Deno.writeTextFile(PINS_FILE, JSON.stringify(pins, null, 2) + "\n")
  const changed = pins.packages.filter((pin) =>
    !before.some((old) => old.name === pin.name && old.version === pin.version)
  )
  console.log(
    changed.length === 0
      ? `${PINS_FILE}: all ${pins.packages.length} pins unchanged`
      : `${PINS_FILE}: ${changed.map((pin) => `${pin.name} ${pin.version}`).join(", ")}`,
  )
}
