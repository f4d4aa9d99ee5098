#!/bin/sh
# mount-partitions.sh DEVICE TARGET [DEVICE TARGET]...
# Mounts each DEVICE at TARGET in the order given (shallowest first), creating each mount point
# in the filesystem mounted before it.
set -eu
# must COMMAND...: run it; when it fails, name it and its status on stderr, and stop there.
must() { "$@" || { s=$?; echo "transient: \`$*\` exited with status $s" >&2; exit "$s"; }; }
while [ "$#" -ge 2 ]; do
	must mkdir -p "$2"
	# busybox's static mount tries the filesystem types the kernel has (ext2/3/4 at boot) in a
	# tenth of util-linux's time under TCG; util-linux's mount, which asks blkid for the type and
	# loads its module (xfs, vfat), mounts everything else.
	busybox mount "$1" "$2" 2>/dev/null || must mount "$1" "$2"
	shift 2
done
