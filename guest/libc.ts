/**
 * The few libc calls the agent makes in its own process (freeze.ts, attach.ts, apply_layer.ts): a
 * process per call would cost more under TCG than the work it does. Loaded on first use.
 */

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  ioctl: { parameters: ["i32", "u64", "i64"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  sync: { parameters: [], result: "void" },
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "buffer"], result: "i32" },
  clock_settime: { parameters: ["i32", "buffer"], result: "i32" },
  chmod: { parameters: ["buffer", "u32"], result: "i32" },
  lstat: { parameters: ["buffer", "buffer"], result: "i32" },
  lchown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
  lsetxattr: { parameters: ["buffer", "buffer", "buffer", "usize", "i32"], result: "i32" },
  mknod: { parameters: ["buffer", "u32", "u64"], result: "i32" },
  utimensat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const

let loaded: Deno.DynamicLibrary<typeof SYMBOLS> | undefined

export const libc = () => (loaded ??= Deno.dlopen("libc.so.6", SYMBOLS)).symbols

/** `text` as a C string. */
export const cString = (text: string): Uint8Array => new TextEncoder().encode(`${text}\0`)

/** The number of the last libc call's failure. */
export const lastErrno = (): number => {
  const location = libc().__errno_location()
  return location === null ? 0 : new Deno.UnsafePointerView(location).getInt32()
}

/** Why the last libc call failed. */
export const lastError = (): string => {
  const errno = lastErrno()
  const text = libc().strerror(errno)
  return text === null ? `errno ${errno}` : Deno.UnsafePointerView.getCString(text)
}

/** `request` on `path` opened with `flags`; the reason when it fails. */
export const ioctlOn = (path: string, flags: number, request: bigint): string | undefined => {
  const { open, ioctl, close } = libc()
  const fd = open(cString(path), flags)
  if (fd < 0) return lastError()
  try {
    return ioctl(fd, request, 0n) < 0 ? lastError() : undefined
  } finally {
    close(fd)
  }
}

export const O_RDONLY = 0, O_WRONLY = 1, O_DIRECTORY = 0o200000, O_CLOEXEC = 0o2000000

/** x86_64's `struct stat`: its size, where `st_mode` is, where `st_atim` and `st_mtim` begin. */
export const STAT_BYTES = 144, STAT_MODE_OFFSET = 24, STAT_TIMES_OFFSET = 72
export const S_IFMT = 0o170000, S_IFDIR = 0o040000, S_IFLNK = 0o120000
export const ENOENT = 2

export const AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100
export const S_IFIFO = 0o010000, S_IFCHR = 0o020000, S_IFBLK = 0o060000

/** Linux's `dev_t` of a device number, as glibc's `makedev` encodes it. */
export const makedev = (major: number, minor: number): bigint =>
  (BigInt((major & 0xfffff000) >>> 0) << 32n) | (BigInt(major & 0xfff) << 8n) |
  (BigInt((minor & 0xffffff00) >>> 0) << 12n) | BigInt(minor & 0xff)
