/**
 * Parse + validate a generated Imagefile of 10,000 instructions (target: 300 ms or less).
 */
import { analyzeImagefile, hasErrors } from "../src/domain/imagefile/mod.ts"

const INSTRUCTIONS = 10_000

/** A scratch image with a few partitions, then every kind of step, continuations and comments. */
const generate = (count: number): string => {
  const lines = [
    "# generated for the benchmark",
    "FROM scratch",
    "DISK 200 GB GPT",
    "PARTITION 1 SIZE 1MB FLAGS bios_grub",
    'PARTITION 2 SIZE 512MB FORMAT vfat OPTIONS "-F 32 -n EFI" MOUNT /boot/efi FLAGS efi',
    "PARTITION 3 SIZE 4GB FORMAT swap",
    'PARTITION 4 FORMAT ext4 OPTIONS "-O ^64bit -L root" MOUNT / FLAGS boot',
  ]
  const steps = [
    (i: number) => `RUN echo "step ${i}" >> /var/log/steps # '#' is text here`,
    (i: number) => `COPY files/a-${i}.conf "files/with space ${i}" /etc/app/`,
    (i: number) => `ADD rootfs-${i}.tar.xz /opt/${i}`,
    (i: number) =>
      `RUN apk add --no-cache \\\n    # a comment inside\n    pkg-${i} \\\n    other-${i}`,
  ]
  for (let i = lines.length - 1; i < count; i++) lines.push(steps[i % steps.length]!(i))
  return lines.join("\n") + "\n"
}

const text = generate(INSTRUCTIONS)

// Fail loudly rather than time the wrong thing.
const { imagefile, diagnostics } = analyzeImagefile(text, "Imagefile")
if (hasErrors(diagnostics) || imagefile.instructions.length !== INSTRUCTIONS) {
  throw new Error(`benchmark input is not a valid Imagefile of ${INSTRUCTIONS} instructions`)
}

Deno.bench(`parse + validate ${INSTRUCTIONS} instructions`, () => {
  analyzeImagefile(text, "Imagefile")
})
