#!/bin/sh
# partition.sh DISK TABLE DEVICE...
# Writes the partition table TABLE (sfdisk's input, explicit sectors) to DISK, has the kernel
# re-read it once (BLKRRPART: sfdisk's own way of telling it costs a quarter of a second more
# under TCG), then waits for each partition DEVICE to appear on devtmpfs.
set -eu
# must COMMAND...: run it; when it fails, name it and its status on stderr, and stop there.
must() { "$@" || { s=$?; echo "transient: \`$*\` exited with status $s" >&2; exit "$s"; }; }
disk=$1 table=$2
shift 2
printf '%s' "$table" |
	must sfdisk --quiet --wipe always --wipe-partitions always --no-tell-kernel "$disk"
must blockdev --rereadpt "$disk"
for dev; do
	n=0
	while [ ! -b "$dev" ]; do
		n=$((n + 1))
		if [ "$n" -gt 50 ]; then
			echo "$dev did not appear after the partition table was written" >&2
			exit 1
		fi
		sleep 0.1
	done
done
