#!/usr/bin/env bash
# Installs what transient needs and is missing, and nothing else: on Debian/Ubuntu as root, the
# system packages; then the pinned npm dependencies (Deno among them) and the helper VM's kernel
# and initramfs. Safe to run again: each part is skipped when it is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(nodejs npm qemu-system-x86 qemu-utils e2fsprogs xfsprogs dosfstools fdisk tar gzip
  xz-utils bzip2 zstd cpio busybox-static mmdebstrap uidmap shellcheck docker-registry skopeo
  apache2-utils time ovmf umoci virt-v2v nbdkit libnbd-bin linux-image-amd64 python3 attr
  libcap2-bin)
missing=()
for package in "${packages[@]}"; do
  # A Node.js installed some other way (nvm, a tarball) is fine.
  case "$package" in nodejs | npm) command -v npm >/dev/null 2>&1 && continue ;; esac
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
    echo "error: missing packages: ${missing[*]}" >&2
    echo "Install them (as root, with your package manager), then run this again; see README.md." >&2
    exit 1
  fi
  echo "==> Installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm ci again only when the lockfile changed since the last install.
if ! [ node_modules/.transient-installed -nt package-lock.json ]; then
  echo "==> Installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules/.transient-installed
fi

echo "==> Helper VM artifacts"
npx --no-install deno task guest
