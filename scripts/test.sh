#!/usr/bin/env bash
# The README's second command: install what the tests need, build, run every test, fuzz every
# decoder of outside bytes for PALM_FUZZ_SECONDS (default 15) each, boot Debian with systemd as
# PID 1 under QEMU and run the installed units there (integration/systemd/run.sh; PALM_SKIP_SYSTEMD=1
# skips it), then boot real Xen under QEMU and migrate PVH guests there — in one dom0, then between
# two Xen hosts (integration/xenrig/ci.sh;
# PALM_SKIP_XEN=1 skips it while iterating). Exits non-zero when any test fails, the fuzzer finds a
# crash, leak or timeout, or either integration job fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/install-deps.sh
ensure_toolchain
swift build --build-tests
swift build --product generate-manual   # install.sh's man pages, in DeployTests
swift test --skip-build
scripts/fuzz.sh "${PALM_FUZZ_SECONDS:-15}"
if [ "${PALM_SKIP_SYSTEMD:-0}" = 1 ]; then
  echo "systemd integration: skipped (PALM_SKIP_SYSTEMD=1)"
else
  integration/systemd/run.sh
fi
if [ "${PALM_SKIP_XEN:-0}" = 1 ]; then
  echo "xen integration: skipped (PALM_SKIP_XEN=1)"
else
  XENRIG_TIMEOUT=${XENRIG_TIMEOUT:-900} integration/xenrig/ci.sh
fi
