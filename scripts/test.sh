#!/usr/bin/env bash
# The README's second command: install what the tests need, build, run every test, then fuzz
# every decoder of outside bytes for PALM_FUZZ_SECONDS (default 15) each.
# Exits non-zero when any test fails or the fuzzer finds a crash, leak or timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/install-deps.sh
ensure_toolchain
swift build --build-tests
swift test --skip-build
scripts/fuzz.sh "${PALM_FUZZ_SECONDS:-15}"
