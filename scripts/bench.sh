#!/usr/bin/env bash
# Benchmarks: print measurements and ratios measured in this one run. Nothing here asserts speed.
#   scripts/bench.sh [tls]      (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_toolchain

WHICH=${1:-all}
RUNS=${RUNS:-3}
WORK=$(mktemp -d /tmp/palm-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

swift build -c release --product palm-bench >/dev/null
BENCH=.build/release/palm-bench

certs/palm-ca --dir "$WORK/ca" init >/dev/null 2>&1
certs/palm-ca --dir "$WORK/ca" host bench --ip 127.0.0.1 >/dev/null 2>&1
CERT="$WORK/ca/issued/bench.pem" KEY="$WORK/ca/issued/bench.key" CA="$WORK/ca/ca.pem"

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

bench_tls() {
  local bytes=$((1 << 30)) wsize=$((256 << 10))
  cc -O2 -o "$WORK/bare_tls_stream" Benchmarks/baseline/bare_tls_stream.c $(pkg-config --cflags --libs openssl) -lpthread
  local palm=() bare=()
  for _ in $(seq "$RUNS"); do   # interleaved, so drift on the machine hits both alike
    palm+=("$($BENCH tls-throughput --cert "$CERT" --key "$KEY" --ca "$CA" --bytes $bytes --write-size $wsize | awk '{print $1/$2}')")
    bare+=("$("$WORK/bare_tls_stream" "$CERT" "$KEY" "$CA" $bytes $wsize | awk '{print $1/$2}')")
  done
  local p b aes
  p=$(printf '%s\n' "${palm[@]}" | median)
  b=$(printf '%s\n' "${bare[@]}" | median)
  aes=$(openssl speed -evp aes-256-gcm -bytes 16384 -seconds 2 -mr 2>/dev/null | awk -F: '/^\+F:/ {print $4}')
  echo "== PalmTLS throughput: 1 GiB over loopback, 256 KiB writes, TLS_AES_256_GCM_SHA384, median of $RUNS =="
  awk -v p="$p" -v b="$b" -v a="$aes" 'BEGIN {
    printf "  %-44s %10.1f MiB/s\n", "PalmTLS channel", p/1048576
    printf "  %-44s %10.1f MiB/s\n", "bare OpenSSL TLS 1.3 stream (C, same certs)", b/1048576
    printf "  %-44s %10.1f MiB/s\n", "openssl speed -evp aes-256-gcm (16 KiB, 1 core)", a/1048576
    printf "  ratio PalmTLS / bare stream:        %.3f   (target >= 0.9)\n", p/b
    printf "  ratio PalmTLS / AES-256-GCM speed:  %.3f\n", p/a
  }'
}

case "$WHICH" in
  tls|all) bench_tls;;
  *) echo "bench.sh: unknown benchmark '$WHICH' (tls, all)" >&2; exit 2;;
esac
