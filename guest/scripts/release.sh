#!/bin/sh
# release.sh ROOT
# The end of a build: unmounts everything below ROOT, deepest first, so that every filesystem is
# clean when the VM stops, and deactivates LVM if root discovery activated it.
set -u
root=$1
sync
if [ -f /run/transient-resolv ]; then
	created=$(cat /run/transient-resolv)
	umount "$created" && rm -f "$created" /run/transient-resolv
fi
if grep -q " $root " /proc/mounts; then
	umount -R "$root" || {
		echo "unmounting lazily" >&2
		umount -R -l "$root"
	}
fi
# Only when a device-mapper device exists: vgchange scans every disk, a fifth of a second
# under TCG.
for dm in /sys/block/dm-*; do
	if [ -e "$dm" ]; then vgchange -an >/dev/null 2>&1 || true; fi
	break
done
sync
