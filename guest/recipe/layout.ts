/** Where the recipe's sources, pins and cache are, whatever the working directory. */

export const GUEST_DIR = new URL("..", import.meta.url).pathname.replace(/\/$/, "")
export const REPO_DIR = new URL("../..", import.meta.url).pathname.replace(/\/$/, "")
export const PINS_FILE = `${GUEST_DIR}/pins.json`
export const CACHE_DIR = `${GUEST_DIR}/cache`
/** Shell scripts that run in the helper VM, shipped in the initramfs. */
export const SCRIPTS_DIR = `${GUEST_DIR}/scripts`
