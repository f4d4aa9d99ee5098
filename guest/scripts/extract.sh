#!/bin/sh
# extract.sh MODE SOURCE DEST TAR_OPTION...
# ADD of a file: an archive (whatever GNU tar can list an entry of; it recognises gzip, bzip2,
# xz and zstd by content) is extracted into the directory DEST with TAR_OPTIONs; anything else
# is copied as COPY copies it (copy-in.sh MODE DEST SOURCE).
set -eu
mode=$1 src=$2 dest=$3
shift 3
if [ -n "$(tar -t -f "$src" 2>/dev/null | head -n 1)" ]; then
	mkdir -p "$dest"
	exec tar -x -f "$src" -C "$dest" "$@"
fi
exec "$(dirname "$0")/copy-in.sh" "$mode" "$dest" "$src"
