/**
 * Commands the agent runs in its own process instead of spawning one: their names are the
 * `argv[0]` of an exec. No program is called so; the host's commands name these, a user's
 * RUN is always `chroot … /bin/sh -c TEXT`.
 */
export const AGENT_BUILTIN = {
  /** `freeze ROOT`: freeze the disk filesystems at or below ROOT (guest/freeze.ts). */
  freeze: "transient-agent:freeze",
  /** `thaw`: thaw what freeze froze. */
  thaw: "transient-agent:thaw",
  /**
   * `attach EPOCH_MS SEED_HEX DISK`: take the host's clock and randomness, mount the build
   * context, wait for the hot-plugged build disk (guest/attach.ts).
   */
  attach: "transient-agent:attach",
  /**
   * `apply-layer ROOT`: apply the uncompressed container-image layer tar read from stdin onto
   * ROOT (guest/apply_layer.ts); a one-line summary on stdout. A signal aborts it, exit 128+N.
   */
  applyLayer: "transient-agent:apply-layer",
} as const
