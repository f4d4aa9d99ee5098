#!/bin/sh
# freeze.sh ROOT
# Before the host snapshots the disk: flushes everything, then freezes each of the image's
# filesystems mounted at or below ROOT that supports it (deepest first), so that the snapshot
# holds them clean. The chroot's own mounts (proc, sysfs, tmpfs) are not on the disk and are
# left alone. thaw.sh undoes this; the list of what was frozen is /run/transient-frozen.
# Shell builtins and busybox applets only: every program started costs tens of milliseconds
# under TCG, and this runs after every step.
set -u
root=$1
sync
points=""
while read -r device point _; do
	case "$device" in /dev/*) ;; *) continue ;; esac
	# /proc/mounts lists mounts in the order they were made: prepending puts the deepest first.
	case "$point" in "$root" | "$root"/*) points="$point
$points" ;; esac
done </proc/mounts
: >/run/transient-frozen
printf '%s' "$points" | while read -r point; do
	if fsfreeze -f "$point" 2>/dev/null; then echo "$point" >>/run/transient-frozen; fi
done
