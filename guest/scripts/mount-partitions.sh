#!/bin/sh
# mount-partitions.sh DEVICE TARGET [DEVICE TARGET]...
# Mounts each DEVICE at TARGET in the order given (shallowest first), creating each mount point
# in the filesystem mounted before it.
set -eu
while [ "$#" -ge 2 ]; do
	mkdir -p "$2"
	mount "$1" "$2"
	shift 2
done
