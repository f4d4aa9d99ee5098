#!/usr/bin/env bash
# Sets up what is missing (scripts/setup.sh), then runs the checks and both test suites: the fast
# one (tests/unit, cli, fake, contract and host), and the end-to-end one (tests/e2e) that builds
# real images in the helper VM under QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

npx --no-install deno task check
npx --no-install deno task test
npx --no-install deno task test:e2e
