#!/bin/sh
# thaw.sh
# After the host's snapshot: thaws what freeze.sh froze.
set -u
[ -f /run/transient-frozen ] || exit 0
status=0
while read -r point; do
	fsfreeze -u "$point" || status=1
done </run/transient-frozen
: >/run/transient-frozen
exit "$status"
