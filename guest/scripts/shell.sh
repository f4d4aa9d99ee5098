#!/bin/sh
# shell.sh TTY ROWS COLUMNS COMMAND...
# INSPECT: runs COMMAND with the guest terminal TTY as its controlling terminal (`setsid -c`
# takes it from stdin), sized as the user's terminal. util-linux's setsid (/usr/bin, before
# busybox's on PATH) execs COMMAND through PATH; should it have to fork, -w waits for the child.
set -u
tty=$1 rows=$2 cols=$3
shift 3
stty -F "$tty" rows "$rows" cols "$cols" 2>/dev/null || true
# shellcheck disable=SC2094 # the terminal is both its input and its output
setsid -c -w "$@" <"$tty" >"$tty" 2>&1
