#!/bin/sh
# freeze.sh ROOT
# Before the host snapshots the disk: flushes everything, then freezes each of the image's
# filesystems mounted at or below ROOT that supports it (deepest first), so that the snapshot
# holds them clean. The chroot's own mounts (proc, sysfs, tmpfs) are not on the disk and are
# left alone. thaw.sh undoes this; the list of what was frozen is /run/transient-frozen.
set -u
root=$1
sync
: >/run/transient-frozen
awk -v root="$root" '$1 ~ /^\/dev\// && ($2 == root || index($2, root "/") == 1) { print $2 }' \
	/proc/mounts | sort -r | while read -r point; do
	if fsfreeze -f "$point" 2>/dev/null; then echo "$point" >>/run/transient-frozen; fi
done
