#!/bin/sh
# thaw.sh
# After the host's snapshot: thaws what freeze.sh froze, shallowest first.
set -u
[ -f /run/transient-frozen ] || exit 0
sort /run/transient-frozen | {
	status=0
	while read -r point; do fsfreeze -u "$point" || status=1; done
	exit "$status"
}
status=$?
rm -f /run/transient-frozen
exit "$status"
