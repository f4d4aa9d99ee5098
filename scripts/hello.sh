#!/usr/bin/env bash
# From nothing to a built image: sets up what is missing (scripts/setup.sh), then builds the
# `hello` example (a tiny busybox system, no network needed) and shows where it is and what is
# in it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "==> Building examples/hello"
npx --no-install deno run -A examples/hello/make_rootfs.ts
npx --no-install deno run -A main.ts build --name hello --local --force examples/hello

image=examples/hello/hello.qcow2
echo "==> $image"
qemu-img info "$image" | grep -E '^(file format|virtual size|disk size):'
echo "Partitions:"
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
qemu-img convert -O raw "$image" "$raw"
sfdisk --list "$raw" | sed -n '/^Device/,$p' | sed "s|^$raw|$image|"
