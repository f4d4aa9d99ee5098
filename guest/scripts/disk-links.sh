#!/bin/sh
# disk-links.sh DISK
# Makes udev's /dev/disk/by-uuid, by-label, by-partuuid and by-partlabel links for DISK's
# partitions, as they are now: the helper VM has no udev, and boot-loader tools (grub-probe,
# update-grub) and fstab entries name partitions that way.
set -u
disk=$1
rm -rf /dev/disk
for kind in by-uuid by-label by-partuuid by-partlabel; do mkdir -p "/dev/disk/$kind" || exit 1; done
# Relative links, as udev makes them; none for a value holding a '/'.
link() {
	case "$2" in "" | */* | . | ..) return 0 ;; esac
	ln -sf "../../${1#/dev/}" "/dev/disk/$3/$2"
}
# One blkid for every partition: -o export prints a DEVNAME=... line, then the partition's
# KEY=VALUE lines (values with shell escapes), then an empty line.
set -- "$disk"?*
[ -b "$1" ] || exit 0
blkid -c /dev/null -o export "$@" 2>/dev/null | while IFS='=' read -r key value; do
	case "$key" in
	DEVNAME) part=$value ;;
	UUID) link "$part" "$value" by-uuid ;;
	LABEL) link "$part" "$value" by-label ;;
	PARTUUID) link "$part" "$value" by-partuuid ;;
	PARTLABEL) link "$part" "$value" by-partlabel ;;
	esac
done
exit 0
