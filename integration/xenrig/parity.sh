#!/usr/bin/env bash
# palm against `xl migrate` on real Xen, as issue targets are stated: N boots of the rig (default 3;
# each boot measures palm and xl on the same guest), every boot's ratios, then their medians.
# A benchmark — it prints, it asserts nothing about speed; a failing boot (palm's or, after the
# retries of ci.sh, the emulation's) fails the run.
#   integration/xenrig/parity.sh [BOOTS]
set -euo pipefail
cd "$(dirname "$0")/../.."
BOOTS=${1:-3}
OUT=$(mktemp -d /tmp/palm-parity.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
for i in $(seq "$BOOTS"); do
  echo "== boot $i of $BOOTS"
  integration/xenrig/ci.sh > "$OUT/boot-$i.log" 2>&1 || { tail -30 "$OUT/boot-$i.log"; echo "parity: boot $i failed"; exit 1; }
  cp .build/xenrig-last/results.txt "$OUT/boot-$i.txt"
  sed -n '2,4p' "$OUT/boot-$i.txt" | sed 's/^/  /'
done
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
col() { for i in $(seq "$BOOTS"); do sed -n "s/^ratio palm \/ xl: .*$1 \([0-9.?]*\).*/\1/p" "$OUT/boot-$i.txt"; done | grep -v '?' | median; }
echo "== median of $BOOTS boots, palm ÷ xl: total $(col 'total') (target <= 1.2), downtime $(col 'downtime') (target <= 1.0), network gap $(col 'network gap')"
