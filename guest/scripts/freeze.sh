#!/bin/sh
# freeze.sh ROOT
# Before the host snapshots the disk: freezes each of the image's filesystems mounted at or below
# ROOT (deepest first), which flushes them, so that the snapshot holds them clean; one that
# cannot be frozen (vfat) is flushed with sync instead. The chroot's own mounts (proc, sysfs,
# tmpfs) are not on the disk and are left alone. thaw.sh undoes this; the list of what was
# frozen is /run/transient-frozen. No subshells and no programs beyond fsfreeze and sync: each
# costs tens of milliseconds under TCG, and this runs after every step.
set -u
root=$1
set --
while read -r device point _; do
	case "$device" in /dev/*) ;; *) continue ;; esac
	# /proc/mounts lists mounts in the order they were made: prepending puts the deepest first.
	case "$point" in "$root" | "$root"/*) set -- "$point" "$@" ;; esac
done </proc/mounts
: >/run/transient-frozen
flushed=yes
for point in "$@"; do
	if fsfreeze -f "$point" 2>/dev/null; then
		echo "$point" >>/run/transient-frozen
	else
		flushed=no
	fi
done
if [ "$flushed" = no ]; then sync; fi
