#!/bin/sh
# prepare-chroot.sh ROOT DISK [PATH TYPE OPTIONS SOURCE]...
# Makes the /dev/disk links of DISK's partitions (disk-links.sh: as they are now, after every
# FORMAT), mounts the chroot's API filesystems under ROOT in the order given, then binds the
# helper VM's resolv.conf over the image's. One guest command for all of them: each agent round trip costs
# about 80 ms under TCG. These fixed mounts need nothing beyond busybox's static mount, which
# under TCG spares 50 ms an exec over util-linux's (a dozen libraries relocated every time).
set -eu
# must COMMAND...: run it; when it fails, name it and its status on stderr, and stop there.
must() { "$@" || { s=$?; echo "transient: \`$*\` exited with status $s" >&2; exit "$s"; }; }
root=$1
disk=$2
shift 2

must "${0%/*}/disk-links.sh" "$disk"

while [ "$#" -ge 4 ]; do
	must mkdir -p "$root$1"
	must busybox mount -t "$2" -o "$3" "$4" "$root$1"
	shift 4
done

# resolv.conf follows the image's symlinks inside ROOT (often into /run, a fresh tmpfs here). A
# file created for the occasion is recorded, so that release.sh removes it again.
[ -f /etc/resolv.conf ] || exit 0
p=/etc/resolv.conf
n=0
while [ -L "$root$p" ] && [ "$n" -lt 16 ]; do
	t=$(readlink "$root$p")
	case "$t" in /*) p=$t ;; *) p=${p%/*}/$t ;; esac
	n=$((n + 1))
done
if [ ! -e "$root$p" ]; then
	mkdir -p "$(dirname "$root$p")"
	: >"$root$p"
	echo "$root$p" >/run/transient-resolv
fi
must busybox mount --bind /etc/resolv.conf "$root$p"
