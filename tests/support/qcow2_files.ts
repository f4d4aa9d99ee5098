/** Small qcow2 files made by qemu-img itself, for the format probe and the pulls that use it. */
import { tool } from "./host_tool.ts"

/** An empty qcow2 of 1 MiB at `path`, made with qemu-img's extra `options`. */
export const qcow2File = async (path: string, ...options: Array<string>) => {
  await tool("qemu-img", "create", "-q", "-f", "qcow2", ...options, path, "1M")
  return path
}

/** A qcow2 at `path` whose data lives in the host file `secret`, as `qemu-img amend` makes one. */
export const qcow2WithExternalData = async (path: string, secret: string) => {
  await qcow2File(path, "-o", `data_file=${path}.data,data_file_raw=on`)
  await tool("qemu-img", "amend", "-q", "-f", "qcow2", "-o", `data_file=${secret}`, path)
  return path
}
