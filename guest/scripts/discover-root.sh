#!/bin/sh
# discover-root.sh ROOT
# For `FROM <image>`: activates LVM, mounts at ROOT the first filesystem (of those blkid sees)
# that holds /etc/fstab, then mounts the image's other filesystems below ROOT as that fstab
# says. The fstab is read here rather than by `chroot mount -a`, which would need the image's
# own mount and a populated /dev in the chroot.
set -u
root=$1
mkdir -p "$root"
vgchange -ay >/dev/null 2>&1 || true
found=
for dev in $(blkid -o device); do
	case "$(blkid -o value -s TYPE "$dev")" in
	swap | LVM2_member | crypto_LUKS | iso9660 | squashfs | "") continue ;;
	esac
	# The helper VM's own disks are mounted already.
	grep -q "^$dev " /proc/mounts && continue
	mount "$dev" "$root" 2>/dev/null || continue
	if [ -f "$root/etc/fstab" ]; then
		found=$dev
		break
	fi
	umount "$root"
done
if [ -z "$found" ]; then
	echo "no filesystem of the image holds /etc/fstab" >&2
	exit 1
fi
echo "root filesystem: $found"
status=0
# shellcheck disable=SC2034 # `rest` takes the dump and pass fields.
while read -r spec target type options rest; do
	case "$spec" in "" | "#"*) continue ;; esac
	case "$target" in /) continue ;; /*) ;; *) continue ;; esac
	case "$type" in
	swap | proc | sysfs | devpts | devtmpfs | tmpfs | nfs | nfs4 | cifs | smbfs | autofs | none) continue ;;
	esac
	case ",$options," in *,noauto,* | *,bind,*) continue ;; esac
	echo "mount $spec $target"
	if ! mount -t "$type" -o "$options" "$spec" "$root$target"; then
		case ",$options," in *,nofail,*) ;; *) status=1 ;; esac
	fi
done <"$root/etc/fstab"
exit "$status"
