#!/bin/sh
# discover-root.sh ROOT DISK
# For `FROM <image>`: activates LVM, mounts at ROOT the first filesystem (of those blkid sees)
# that holds /etc/fstab, then mounts the image's other filesystems below ROOT as that fstab
# says. The fstab is read here rather than by `chroot mount -a`, which would need the image's
# own mount and a populated /dev in the chroot. Its sources may be UUID=, LABEL=, PARTUUID=,
# PARTLABEL= (mount resolves them), /dev/disk/by-*/ (disk-links.sh makes them), LVM names, or a
# partition of whatever disk the image was made on (/dev/sdb2, /dev/vda2, /dev/xvda2,
# /dev/nvme0n1p2): the image is DISK here, so that is DISK's partition of the same number.
set -u
root=$1
disk=$2
mkdir -p "$root"
vgchange -ay >/dev/null 2>&1 || true
"${0%/*}/disk-links.sh" "$disk" || echo "cannot make the /dev/disk links" >&2
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
	case "$spec" in
	/dev/sd[a-z]*[0-9] | /dev/vd[a-z]*[0-9] | /dev/hd[a-z]*[0-9] | /dev/xvd[a-z]*[0-9] | \
		/dev/nvme[0-9]*n[0-9]*p[0-9]*)
		spec=$disk${spec##*[!0-9]}
		;;
	esac
	echo "mount $spec $target"
	if ! mount -t "$type" -o "$options" "$spec" "$root$target"; then
		case ",$options," in *,nofail,*) ;; *) status=1 ;; esac
	fi
done <"$root/etc/fstab"
exit "$status"
