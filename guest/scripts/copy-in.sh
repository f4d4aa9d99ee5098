#!/bin/sh
# copy-in.sh dir DEST SOURCE...
# copy-in.sh file DEST SOURCE
# COPY: copies sources from the build context into the image. Mode "dir": DEST is a directory; a
# directory source gives its contents, a file lands under its own name. Mode "file": the one
# SOURCE becomes DEST (or lands inside it, if that is an existing directory, as with cp). What is
# copied is owned by root, as with Docker's COPY: the build directory belongs to the user who
# runs the build, not to anyone in the image.
set -eu
# must COMMAND...: run it; when it fails, name it and its status on stderr, and stop there.
must() { "$@" || { s=$?; echo "transient: \`$*\` exited with status $s" >&2; exit "$s"; }; }
mode=$1 dest=$2
shift 2
if [ "$mode" = file ]; then
	must mkdir -p "$(dirname "$dest")"
	must cp -a -H "$1" "$dest"
	if [ -d "$dest" ] && [ ! -L "$dest" ]; then
		must chown -R -h 0:0 "$dest/${1##*/}"
	else
		must chown -R -h 0:0 "$dest"
	fi
	exit 0
fi
must mkdir -p "$dest"
for src; do
	if [ -d "$src" ]; then
		must cp -a -H "$src/." "$dest/"
		for entry in "$src"/* "$src"/.[!.]* "$src"/..?*; do
			[ -e "$entry" ] || [ -L "$entry" ] || continue
			must chown -R -h 0:0 "$dest/${entry##*/}"
		done
	else
		must cp -a -H "$src" "$dest/"
		must chown -R -h 0:0 "$dest/${src##*/}"
	fi
done
