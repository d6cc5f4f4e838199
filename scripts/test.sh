#!/usr/bin/env bash
# The README's second command: install what the tests need, build, run every test.
# Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/install-deps.sh
ensure_toolchain
swift build --build-tests
swift test --skip-build
