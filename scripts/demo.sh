#!/usr/bin/env bash
# The main job: until the migration engine lands, show the three executables.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release
for exe in palm-source palm-dest palm-coordinator; do
  echo "=============================== $exe"
  "$BIN/$exe" --version
  "$BIN/$exe" --help
done
