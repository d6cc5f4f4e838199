#!/usr/bin/env bash
# The README's second command: install what the tests need, build, run every test, fuzz every
# decoder of outside bytes for PALM_FUZZ_SECONDS (default 15) each, then boot real Xen under QEMU
# and migrate a PVH guest there (integration/xenrig/ci.sh; PALM_SKIP_XEN=1 skips it while iterating).
# Exits non-zero when any test fails, the fuzzer finds a crash, leak or timeout, or the Xen job fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/install-deps.sh
ensure_toolchain
swift build --build-tests
swift test --skip-build
scripts/fuzz.sh "${PALM_FUZZ_SECONDS:-15}"
if [ "${PALM_SKIP_XEN:-0}" = 1 ]; then
  echo "xen integration: skipped (PALM_SKIP_XEN=1)"
else
  XENRIG_TIMEOUT=${XENRIG_TIMEOUT:-900} integration/xenrig/ci.sh
fi
