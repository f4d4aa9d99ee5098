#!/bin/sh
# extract.sh MODE SOURCE DEST TAR_OPTION...
# ADD of a file. A tar archive, plain or compressed (gzip, bzip2, xz, zstd, told by their magic
# bytes), is extracted into the directory DEST with TAR_OPTIONs; any error extracting it fails
# the step. Another compressed file must decompress whole (a damaged one fails the step) and is
# then copied as it is, as is anything else (copy-in.sh MODE DEST SOURCE), as Docker's ADD does.
set -eu
# must COMMAND...: run it; when it fails, name it and its status on stderr, and stop there.
must() { "$@" || { s=$?; echo "transient: \`$*\` exited with status $s" >&2; exit "$s"; }; }
mode=$1 src=$2 dest=$3
shift 3

magic=$(head -c 6 "$src" | od -A n -t x1 | tr -d ' \n')
case $magic in
1f8b*) decompress="gzip -d -c" ;;
425a68*) decompress="bzip2 -d -c" ;;
fd377a585a00) decompress="xz -d -c" ;;
28b52ffd*) decompress="zstd -d -q -c" ;;
*) decompress="cat" ;;
esac

# A tar archive has "ustar" at offset 257 of its first header.
# shellcheck disable=SC2086 # $decompress is a command and its options
kind=$($decompress <"$src" 2>/dev/null | dd bs=1 skip=257 count=5 2>/dev/null || true)
if [ "$kind" = ustar ]; then
	must mkdir -p "$dest"
	must tar -x -f "$src" -C "$dest" "$@"
	exit 0
fi
if [ "$decompress" != cat ]; then
	# shellcheck disable=SC2086
	if ! $decompress <"$src" >/dev/null; then
		echo "extract.sh: ${src##*/} looks compressed (${decompress%% *}) but is damaged" >&2
		exit 1
	fi
fi
exec "$(dirname "$0")/copy-in.sh" "$mode" "$dest" "$src"
