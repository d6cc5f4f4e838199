#!/usr/bin/env bash
# The README's second command: install what the tests need, build, run every test — the unit and
# end-to-end tests on this machine, then the Xen integration test (integration/xenrig/run.sh: a
# real Xen 4.17 host under QEMU; PALM_XENRIG=0 skips it while iterating on something else).
# Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/install-deps.sh
ensure_toolchain
swift build --build-tests
swift test --skip-build
if [ "${PALM_XENRIG:-1}" != 0 ]; then
  integration/xenrig/run.sh
fi
