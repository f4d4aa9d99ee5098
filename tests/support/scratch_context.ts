/**
 * The build context of the FROM-scratch e2e build (and of the benchmark that times it): a busybox
 * rootfs, a 0755 file, a directory, on a 256 MB GPT disk.
 */
import { makeBusyboxRootfs } from "../../examples/hello/make_rootfs.ts"

export const SCRATCH_IMAGEFILE = [
  "FROM scratch",
  "DISK 256 MB GPT",
  "PARTITION 1 SIZE 8 MB FLAGS bios_grub",
  "PARTITION 2 FORMAT ext4 MOUNT /",
  "ADD rootfs.tar.gz /",
  "COPY tool.sh /usr/local/bin/tool",
  "COPY conf /etc/app",
  "RUN echo hello > /etc/motd && ln -s motd /etc/motd.link",
].join("\n") + "\n"

/** Write the context into `dir` (created if missing). */
export const writeScratchContext = async (dir: string): Promise<void> => {
  await Deno.mkdir(`${dir}/conf/sub`, { recursive: true })
  await Deno.writeTextFile(`${dir}/Imagefile`, SCRATCH_IMAGEFILE)
  await makeBusyboxRootfs(`${dir}/rootfs.tar.gz`)
  await Deno.writeTextFile(`${dir}/tool.sh`, "#!/bin/sh\necho tool\n")
  await Deno.chmod(`${dir}/tool.sh`, 0o755)
  await Deno.writeTextFile(`${dir}/conf/app.conf`, "key=value\n")
  await Deno.writeTextFile(`${dir}/conf/sub/deep.txt`, "deep\n")
}
