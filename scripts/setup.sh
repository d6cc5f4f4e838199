#!/usr/bin/env bash
# The README's first command: install everything palm needs on Debian 12, build it, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/install-deps.sh
ensure_toolchain
echo "palm: building (release)…"
swift build -c release --product palm-source
swift build -c release --product palm-dest
swift build -c release --product palm-coordinator
swift build -c release --product palm-simguest
exec scripts/demo.sh
