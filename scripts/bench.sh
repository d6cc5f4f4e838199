#!/usr/bin/env bash
# Benchmarks: print measurements and ratios measured in this one run. Nothing here asserts speed.
#   scripts/bench.sh [tls|migration|prediction|batch|link|codecs|qemu|protection|attestation|coordinator]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_toolchain

WHICH=${1:-all}
RUNS=${RUNS:-3}
WORK=$(mktemp -d /tmp/palm-bench.XXXXXX)

for p in palm-bench palm-source palm-dest palm-coordinator palm-simguest; do swift build -c release --product $p >/dev/null; done
BENCH=.build/release/palm-bench
BIN=.build/release
# Benchmark-only tools: jq reads the JSON reports, gnuplot draws the figure.
for tool in jq gnuplot; do
  command -v $tool >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends jq gnuplot-nox >/dev/null; break; }
done

certs/palm-ca --dir "$WORK/ca" init >/dev/null 2>&1
certs/palm-ca --dir "$WORK/ca" host bench --ip 127.0.0.1 >/dev/null 2>&1
certs/palm-ca --dir "$WORK/ca" host bench-coordinator --role coordinator >/dev/null 2>&1
CERT="$WORK/ca/issued/bench.pem" KEY="$WORK/ca/issued/bench.key" CA="$WORK/ca/ca.pem"
COORD_CERT="$WORK/ca/issued/bench-coordinator.pem" COORD_KEY="$WORK/ca/issued/bench-coordinator.key"
RA=/dev/shm/palm-bench-a RB=/dev/shm/palm-bench-b
DEST_PID="" PORT="" PG_DIR="" PG_OWNER=postgres
cleanup() {
  # A private PostgreSQL server (bench_coordinator_postgresql) is stopped and removed.
  [ -n "$PG_DIR" ] && { runuser -u $PG_OWNER -- "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1; rm -rf "$PG_DIR"; }
  [ -n "$DEST_PID" ] && { kill $DEST_PID 2>/dev/null; wait $DEST_PID 2>/dev/null; }
  for r in $RA $RB; do [ -d $r ] && for vm in $("$BIN/palm-simguest" list --root $r 2>/dev/null | cut -f1); do
    "$BIN/palm-simguest" destroy "$vm" --root $r >/dev/null 2>&1 || true; done; done
  ip netns del palm-bench-a 2>/dev/null || true; ip netns del palm-bench-b 2>/dev/null || true
  rm -rf "$WORK" $RA $RB /dev/shm/palm-bench-warm /dev/shm/palm-bench-q*.ram
  true
}
trap cleanup EXIT

# A two-"host" cluster on loopback: both hosts use the bench certificate, the destination runs
# palm-dest (release) with the coordinator's certificate, the source allows its measurement.
start_cluster() {
  [ -n "$DEST_PID" ] && return
  local BIN=${BIN:-.build/release}
  rm -rf $RA $RB
  for h in a b; do
    printf '[tls]\ncertificate = "%s"\nkey = "%s"\nca = "%s"\n[hypervisor]\ndriver = "sim"\n[sim]\nroot = "/dev/shm/palm-bench-%s"\nmemory_limit = "12G"\n[state]\ndirectory = "%s"\n' \
      "$CERT" "$KEY" "$CA" $h "$WORK/state-$h" > "$WORK/$h.toml"
  done
  printf '[listen]\naddress = "127.0.0.1"\nport = 0\n[security]\ncoordinator_certificate = "%s"\n' "$COORD_CERT" >> "$WORK/b.toml"
  printf '[attestation]\n' >> "$WORK/a.toml"
  "$BIN/palm-dest" measure --config "$WORK/b.toml" >> "$WORK/a.toml"
  "$BIN/palm-dest" serve --config "$WORK/b.toml" > "$WORK/dest.out" 2> "$WORK/dest.log" &
  DEST_PID=$!
  until grep -q listening "$WORK/dest.out" 2>/dev/null; do sleep 0.1; done
  PORT=$(awk -F: '/listening/ {print $NF}' "$WORK/dest.out")
}

# migrate VM [palm-source options…]: a fresh ticket, then palm-source migrate --json
migrate() {
  local vm=$1; shift
  "$BIN/palm-coordinator" ticket issue --key "$COORD_KEY" --vm "$vm" --memory "$("$BIN/palm-simguest" list --root $RA | awk -v v="$vm" '$1 == v {print $2 "M"}')" \
    --source-cert "$CERT" --dest-cert "$CERT" --out "$WORK/ticket" >/dev/null
  "$BIN/palm-source" migrate "$vm" --to 127.0.0.1:$PORT --config "$WORK/a.toml" --ticket "$WORK/ticket" --json "$@"
}

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

bare_stream_rate() {  # bytes/s of the bare OpenSSL stream, median of $RUNS
  cc -O2 -o "$WORK/bare_tls_stream" Benchmarks/baseline/bare_tls_stream.c $(pkg-config --cflags --libs openssl) -lpthread
  for _ in $(seq "$RUNS"); do "$WORK/bare_tls_stream" "$CERT" "$KEY" "$CA" $((1 << 30)) $((256 << 10)) | awk '{print $1/$2}'; done | median
}

cpu_of() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }

# This machine backs fresh memory lazily and takes freed memory back (free page reporting), so
# guests and incoming images would be timed against the host's allocator: touch GiB of tmpfs
# just before each measured migration.
warm() { dd if=/dev/zero of=/dev/shm/palm-bench-warm bs=1M count=$(($1 * 1024)) status=none; rm -f /dev/shm/palm-bench-warm; }

# palm as it was before the page-path rework (protocol v1, one stream), built once into
# .build-baseline from git, so its figures are measured in this same run. BASELINE=none skips it.
BASELINE=${BASELINE:-dc83d4b}
baseline_bin() {
  [ "$BASELINE" = none ] && return 1
  local src=.build-baseline/src build=.build-baseline/build
  if [ ! -x "$build/release/palm-dest" ] || [ "$(cat .build-baseline/rev 2>/dev/null)" != "$BASELINE" ]; then
    echo "  (building palm $BASELINE for the baseline figures, once: a few minutes)" >&2
    rm -rf "$src"; mkdir -p .build-baseline
    git worktree prune
    git worktree add --detach -f "$src" "$BASELINE" >/dev/null 2>&1 || return 1
    for p in palm-source palm-dest palm-coordinator palm-simguest; do
      swift build -c release --package-path "$src" --scratch-path "$build" --product $p >/dev/null 2>&1 || return 1
    done
    echo "$BASELINE" > .build-baseline/rev
  fi
  echo "$build/release"
}

# One measured migration on the loopback cluster of binaries $MBIN:
#   measure NAME GUEST_ARGS… -- PALM_SOURCE_ARGS…      → appends one JSON line to $WORK/results.jsonl
measure() {
  local name=$1; shift
  local gargs=() sargs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do gargs+=("$1"); shift; done
  [ "${1:-}" = "--" ] && shift; sargs=("$@")
  local mem=1G
  for ((i = 0; i < ${#gargs[@]}; i++)); do [ "${gargs[$i]}" = --memory ] && mem=${gargs[$((i + 1))]}; done
  "$MBIN/palm-simguest" create bench --root $RA "${gargs[@]}" >/dev/null
  warm $(( ${mem%G} + 1 ))   # for the destination's image, right before it is allocated
  "$MBIN/palm-coordinator" ticket issue --key "$COORD_KEY" --vm bench --memory "$mem" --source-cert "$CERT" --dest-cert "$CERT" --out "$WORK/ticket" >/dev/null
  local c0 c1 hwm0
  c0=$(cpu_of $DEST_PID)
  /usr/bin/time -f "%M" -o "$WORK/src.rss" "$MBIN/palm-source" migrate bench --to 127.0.0.1:$PORT --config "$WORK/a.toml" \
    --ticket "$WORK/ticket" --json "${sargs[@]}" > "$WORK/r.json" 2> "$WORK/src.log" || { cat "$WORK/src.log"; exit 1; }
  c1=$(cpu_of $DEST_PID)
  "$MBIN/palm-simguest" destroy bench --root $RB
  jq -c --arg name "$name" --arg dcpu "$(echo "$c1 - $c0" | bc -l)" --arg srss "$(cat "$WORK/src.rss")" \
        --arg drss "$(awk '/VmHWM/ {print $2}' /proc/$DEST_PID/status)" '
    {name: $name, total: .totalSeconds, downtime: (.downtimeSeconds * 1000), predicted: (.predictedDowntimeSeconds * 1000),
     rounds: (.rounds | length), rate: .throughputMiBps, round0: (.rounds[0].bytes / 1048576 / .rounds[0].seconds),
     cpu: ((.sourceCPUSeconds + ($dcpu | tonumber)) / (.bytesOnWire / 1073741824)),
     reason: .stopReason, srcRSS: (($srss | tonumber) / 1024), dstRSS: (($drss | tonumber) / 1024)}' "$WORK/r.json" \
    | tee -a "$WORK/results.jsonl" >/dev/null
}

# The loopback cluster (palm-dest of $MBIN on host "b"), restarted for each set of binaries.
use_cluster() {
  MBIN=$1
  [ -n "$DEST_PID" ] && { kill $DEST_PID; wait $DEST_PID 2>/dev/null || true; DEST_PID=""; }
  BIN=$MBIN start_cluster
}

result() { jq -r --arg n "$1" "select(.name == \$n) | $2" "$WORK/results.jsonl" | tail -1; }

bench_migration() {
  : > "$WORK/results.jsonl"
  local bare; bare=$(bare_stream_rate)
  local old; old=$(baseline_bin) || old=""
  local random=(--memory 1G --rate 0)
  local moderate=(--memory 1G --rate 10000 --pattern hot-set --working-set 64M)
  local heavy=(--memory 1G --rate 1000000 --pattern uniform)

  echo "== The page path: a random 1 GiB guest, every protection (mTLS, ticket, attestation, SHA-256 of every page, signed hand-off) =="
  if [ -n "$old" ]; then use_cluster "$old"; measure "v1" "${random[@]}" --; fi
  use_cluster "$BIN"
  for n in 1 2 4; do measure "N=$n" "${random[@]}" -- --streams $n; done
  printf '  %-26s %8s %9s %14s %11s %12s\n' "" "total s" "MiB/s" "÷ bare stream" "CPU-s/GiB" "round 0 MiB/s"
  for name in v1 N=1 N=2 N=4; do
    [ -n "$(result $name .rate)" ] || continue
    local label=$name; [ $name = v1 ] && label="before ($BASELINE, 1 stream)"; [ $name != v1 ] && label="palm $name"
    jq -r --arg b "$bare" --arg l "$label" --arg n "$name" 'select(.name == $n) |
      "  \($l | .[0:26] | . + " " * (26 - length)) \(.total | . * 100 | round / 100 | tostring | " " * (8 - length) + .) \(.rate | round | tostring | " " * (9 - length) + .) \((.rate * 1048576 / ($b | tonumber)) * 1000 | round / 1000 | tostring | " " * (14 - length) + .) \(.cpu * 100 | round / 100 | tostring | " " * (11 - length) + .) \(.round0 | round | tostring | " " * (12 - length) + .)"' "$WORK/results.jsonl" | tail -1
  done
  awk -v b="$bare" 'BEGIN { printf "  bare OpenSSL TLS 1.3 stream (C, one thread each end, same run): %.0f MiB/s\n", b/1048576 }'
  echo "  targets on this 2-core box: whole-migration rate >= 0.5 x the bare stream; <= 4.0 CPU-s/GiB (source + destination)"

  echo "== Fig. 5: 1 GiB guest, multi-pass pre-copy vs stop-and-copy, by page streams =="
  : > "$WORK/plot.dat"
  printf '  %-10s %-16s %8s %10s %11s %7s %7s  %s\n' workload mode "total s" downtime predicted error rounds "pre-copy ended"
  for wl in idle moderate heavy; do
    local args; case $wl in idle) args=("${random[@]}");; moderate) args=("${moderate[@]}");; heavy) args=("${heavy[@]}");; esac
    local line="$wl"
    for n in 1 2 4; do
      measure "$wl pre-copy N=$n" "${args[@]}" -- --streams $n
      line="$line $(result "$wl pre-copy N=$n" .total)"
    done
    measure "$wl stop-and-copy N=2" "${args[@]}" -- --streams 2 --mode stop-and-copy
    line="$line $(result "$wl stop-and-copy N=2" .total)"
    for n in 1 2 4; do line="$line $(result "$wl pre-copy N=$n" .downtime)"; done
    line="$line $(result "$wl stop-and-copy N=2" .downtime)"
    echo "$line" >> "$WORK/plot.dat"
    for name in "$wl pre-copy N=1" "$wl pre-copy N=2" "$wl pre-copy N=4" "$wl stop-and-copy N=2"; do
      jq -r --arg n "$name" 'select(.name == $n) | [(.name | split(" ")[0]), (.name | split(" ")[1:] | join(" ")), .total, .downtime, .predicted,
        ((.predicted - .downtime) / .downtime * 100), .rounds, .reason] | @tsv' "$WORK/results.jsonl" | tail -1 \
        | awk -F'\t' '{printf "  %-10s %-16s %8.2f %7.1f ms %8.1f ms %+6.0f%% %7d  %s\n", $1,$2,$3,$4,$5,$6,$7,$8}'
    done
  done
  awk '{ printf "  %s: pre-copy (N=2) total %.2f s = %.2f x stop-and-copy; downtime %.1f ms vs %.1f ms\n", $1, $3, $3 / $5, $7, $9 }' "$WORK/plot.dat"
  echo "  target: a heavy guest's pre-copy total <= 1.3 x its stop-and-copy total at no worse downtime"

  local png=${PALM_BENCH_PNG:-palm-figure5.png}
  gnuplot <<PLOT
set terminal pngcairo size 1100,460 noenhanced
set output "$png"
set multiplot layout 1,2 title "palm: 1 GiB sim guest, multi-pass pre-copy (1, 2, 4 page streams) vs stop-and-copy (measured)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set grid ytics
set key outside below horizontal
set ylabel "total migration time (s)"
set yrange [0:*]
plot "$WORK/plot.dat" using 2:xtic(1) title "pre-copy N=1", "" using 3 title "pre-copy N=2", "" using 4 title "pre-copy N=4", "" using 5 title "stop-and-copy"
set ylabel "downtime (ms)"
set yrange [1:*]
set logscale y
plot "$WORK/plot.dat" using 6:xtic(1) title "pre-copy N=1", "" using 7 title "pre-copy N=2", "" using 8 title "pre-copy N=4", "" using 9 title "stop-and-copy"
unset multiplot
PLOT
  echo "  figure: $png"

  echo "== 4 GiB guests, four page streams: the downtime prediction and the agents' memory =="
  printf '  %-10s %8s %10s %11s %7s %7s %16s %16s\n' workload "total s" downtime predicted error rounds "palm-source RSS" "palm-dest RSS"
  for wl in idle moderate; do
    local args; case $wl in idle) args=(--memory 4G --rate 0);; moderate) args=(--memory 4G --rate 10000 --pattern hot-set --working-set 64M);; esac
    use_cluster "$BIN"   # a fresh palm-dest: its peak RSS is this migration's
    measure "4G $wl" "${args[@]}" -- --streams 4
    jq -r --arg n "4G $wl" 'select(.name == $n) | [($n | split(" ")[1]), .total, .downtime, .predicted, ((.predicted - .downtime) / .downtime * 100),
      .rounds, .srcRSS, .dstRSS] | @tsv' "$WORK/results.jsonl" \
      | awk -F'\t' '{printf "  %-10s %8.2f %7.1f ms %8.1f ms %+6.0f%% %7d %12.1f MiB %12.1f MiB\n", $1,$2,$3,$4,$5,$6,$7,$8}'
  done
  echo "  targets: prediction within ±30 % (idle and moderate, 1 GiB and 4 GiB); 100 ms met at 4 GiB moderate; each agent <= 256 MiB"
}

# Batch sizes: the same random 1 GiB move with 64, 256 (default) and 1000 pages per MEMORY batch.
bench_batch() {
  : > "$WORK/results.jsonl"
  use_cluster "$BIN"
  echo "== MEMORY batch size: random 1 GiB, two streams, median of $RUNS =="
  printf '  %-12s %9s %11s\n' "batch pages" "MiB/s" "CPU-s/GiB"
  for b in 64 256 1000; do
    sed -i '/^\[migration\]/,/^$/d' "$WORK/a.toml"
    sed -i "1i [migration]\nbatch_pages = $b\n" "$WORK/a.toml"
    for r in $(seq "$RUNS"); do measure "b$b-$r" --memory 1G --rate 0 -- --streams 2; done
    jq -r --arg p "b$b-" 'select(.name | startswith($p)) | "\(.rate) \(.cpu)"' "$WORK/results.jsonl" > "$WORK/b.txt"
    printf '  %-12s %9.0f %11.2f\n' $b "$(cut -d' ' -f1 "$WORK/b.txt" | median)" "$(cut -d' ' -f2 "$WORK/b.txt" | median)"
  done
  sed -i '/^\[migration\]/,/^$/d' "$WORK/a.toml"
}

# Over a 1 Gbit/s link: the two hosts in their own network namespaces joined by a veth pair whose
# egress a tbf qdisc shapes to 1 Gbit/s (this kernel has no netem), a realistic guest (zero,
# text-like and random pages), compression none / lz4 / zstd.
bench_link() {
  echo "== Over a 1 Gbit/s link (veth + tbf between two network namespaces), realistic 1 GiB guest, two streams =="
  use_cluster "$BIN"   # the host configurations (the loopback destination itself is not used here)
  local na=palm-bench-a nb=palm-bench-b
  ip netns del $na 2>/dev/null || true; ip netns del $nb 2>/dev/null || true
  ip netns add $na; ip netns add $nb
  ip link add palm-bva type veth peer name palm-bvb
  ip link set palm-bva netns $na; ip link set palm-bvb netns $nb
  ip -n $na addr add 10.251.0.1/24 dev palm-bva; ip -n $nb addr add 10.251.0.2/24 dev palm-bvb
  for n in $na $nb; do ip -n $n link set lo up; done
  ip -n $na link set palm-bva up; ip -n $nb link set palm-bvb up
  ip netns exec $na tc qdisc add dev palm-bva root tbf rate 1gbit burst 256kb latency 20ms
  ip netns exec $nb tc qdisc add dev palm-bvb root tbf rate 1gbit burst 256kb latency 20ms
  certs/palm-ca --dir "$WORK/ca" host linkdest --ip 10.251.0.2 >/dev/null 2>&1
  local dc="$WORK/ca/issued/linkdest.pem" dk="$WORK/ca/issued/linkdest.key"
  printf '[tls]\ncertificate = "%s"\nkey = "%s"\nca = "%s"\n[hypervisor]\ndriver = "sim"\n[sim]\nroot = "%s"\nmemory_limit = "12G"\n[state]\ndirectory = "%s"\n[listen]\naddress = "10.251.0.2"\nport = 7410\n[security]\ncoordinator_certificate = "%s"\n' \
    "$dc" "$dk" "$CA" $RB "$WORK/state-link-b" "$COORD_CERT" > "$WORK/link-b.toml"
  sed '/^\[attestation\]/,$d' "$WORK/a.toml" > "$WORK/link-a.toml"
  printf '[attestation]\n' >> "$WORK/link-a.toml"
  "$BIN/palm-dest" measure --config "$WORK/link-b.toml" >> "$WORK/link-a.toml"
  ip netns exec $nb "$BIN/palm-dest" serve --config "$WORK/link-b.toml" > "$WORK/link-dest.out" 2> "$WORK/link-dest.log" &
  local ldest=$!
  until grep -q listening "$WORK/link-dest.out" 2>/dev/null; do kill -0 $ldest || { cat "$WORK/link-dest.log"; return 1; }; sleep 0.1; done
  printf '  %-8s %8s %12s %10s %12s %16s\n' codec "total s" "wire MiB/s" "wire MiB" "CPU-s total" "batches shrunk"
  for codec in none lz4 zstd auto; do
    "$BIN/palm-simguest" create bench --root $RA --memory 1G --fill realistic >/dev/null
    warm 2
    "$BIN/palm-coordinator" ticket issue --key "$COORD_KEY" --vm bench --memory 1G --source-cert "$CERT" --dest-cert "$dc" --out "$WORK/ticket" >/dev/null
    local c0 c1; c0=$(cpu_of $ldest)
    ip netns exec $na "$BIN/palm-source" migrate bench --to 10.251.0.2:7410 --config "$WORK/link-a.toml" --ticket "$WORK/ticket" \
      --json --streams 2 --compression $codec > "$WORK/r.json" 2> "$WORK/src.log" || { cat "$WORK/src.log"; break; }
    c1=$(cpu_of $ldest)
    "$BIN/palm-simguest" destroy bench --root $RB
    jq -r --arg c $codec --arg d "$(echo "$c1 - $c0" | bc -l)" '[$c, .totalSeconds, (.bytesOnWire / 1048576 / .totalSeconds), (.bytesOnWire / 1048576),
      (.sourceCPUSeconds + ($d | tonumber)), .compressedBatches] | @tsv' "$WORK/r.json" \
      | awk -F'\t' '{printf "  %-8s %8.2f %12.1f %10.1f %12.2f %16d\n", $1,$2,$3,$4,$5,$6}'
  done
  kill $ldest; wait $ldest 2>/dev/null || true
  ip netns del $na; ip netns del $nb
}

# compression = "auto" where the link is fast and the CPU has AES-NI: loopback, a realistic 1 GiB
# guest, two streams, none / lz4 / zstd / auto in one run (over a slow link: bench_link's auto row).
bench_codecs() {
  : > "$WORK/results.jsonl"
  use_cluster "$BIN"
  echo "== Compression on loopback (fast link, AES-NI): realistic 1 GiB guest, two streams, median of $RUNS =="
  printf '  %-8s %8s %9s %12s %16s\n' codec "total s" "MiB/s" "CPU-s total" "batches shrunk"
  for codec in none lz4 zstd auto; do
    for r in $(seq "$RUNS"); do
      measure "$codec-$r" --memory 1G --rate 0 --fill realistic -- --streams 2 --compression $codec
      jq -r '"\(.totalSeconds) \(1024 / .totalSeconds) \(.sourceCPUSeconds) \(.compressedBatches)"' "$WORK/r.json" >> "$WORK/codec-$codec.txt"
    done
    printf '  %-8s %8.2f %9.0f %12.2f %16.0f\n' $codec "$(cut -d' ' -f1 "$WORK/codec-$codec.txt" | median)" "$(cut -d' ' -f2 "$WORK/codec-$codec.txt" | median)" \
      "$(cut -d' ' -f3 "$WORK/codec-$codec.txt" | median)" "$(cut -d' ' -f4 "$WORK/codec-$codec.txt" | median)"
  done
  echo "  (CPU-s: palm-source's; auto should run about as fast as the faster of none and lz4, the codec it tries)"
}

# QEMU 7.2's own TLS migration (x509, mutual, the same ECDSA certificates) of a 1 GiB guest whose
# RAM is random (a shared memory-backend file filled before QEMU starts; the guest idles in the
# firmware), on one channel and with multifd, beside palm on 1, 2 and 4 streams, in one run.
bench_qemu() {
  command -v qemu-system-x86_64 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
  : > "$WORK/results.jsonl"
  use_cluster "$BIN"
  local x509="$WORK/qemu-x509"
  mkdir -p "$x509"
  cp "$CA" "$x509/ca-cert.pem"
  for side in server client; do cp "$CERT" "$x509/$side-cert.pem"; cp "$KEY" "$x509/$side-key.pem"; done
  chmod 600 "$x509"/*-key.pem
  echo "== QEMU $(qemu-system-x86_64 --version | awk 'NR == 1 {print $4}') TLS migration vs palm: random 1 GiB guest, loopback, median of $RUNS =="
  printf '  %-34s %9s %11s %12s\n' "" "MiB/s" "CPU-s/GiB" "downtime ms"
  local common=(-machine q35,accel=tcg -cpu qemu64 -smp 1 -m 1G -nographic -nodefaults -display none -serial none)
  for ch in 1 2 4; do
    : > "$WORK/q.txt"
    for _ in $(seq "$RUNS"); do
      head -c $((1 << 30)) /dev/urandom > /dev/shm/palm-bench-qsrc.ram
      rm -f /dev/shm/palm-bench-qdst.ram "$WORK"/q*.qmp
      warm 2   # for the destination's RAM, right before it is allocated
      qemu-system-x86_64 "${common[@]}" -object memory-backend-file,id=ram0,size=1G,mem-path=/dev/shm/palm-bench-qsrc.ram,share=on \
        -machine memory-backend=ram0 -object tls-creds-x509,id=tls0,endpoint=client,dir="$x509",verify-peer=on \
        -qmp unix:"$WORK/qs.qmp",server=on,wait=off 2>/dev/null &
      local qs=$!
      qemu-system-x86_64 "${common[@]}" -object memory-backend-file,id=ram0,size=1G,mem-path=/dev/shm/palm-bench-qdst.ram,share=on \
        -machine memory-backend=ram0 -object tls-creds-x509,id=tls0,endpoint=server,dir="$x509",verify-peer=on \
        -qmp unix:"$WORK/qd.qmp",server=on,wait=off -incoming defer 2>/dev/null &
      local qd=$!
      until [ -S "$WORK/qs.qmp" ] && [ -S "$WORK/qd.qmp" ]; do sleep 0.05; done
      local c0; c0=$(echo "$(cpu_of $qs) + $(cpu_of $qd)" | bc -l)
      Benchmarks/qemu/qmp_migrate.py "$WORK/qs.qmp" "$WORK/qd.qmp" 47411 $ch > "$WORK/q.json"
      local c1; c1=$(echo "$(cpu_of $qs) + $(cpu_of $qd)" | bc -l)
      kill $qs $qd; wait $qs $qd 2>/dev/null || true
      rm -f /dev/shm/palm-bench-qsrc.ram /dev/shm/palm-bench-qdst.ram
      jq -r --arg cpu "$(echo "$c1 - $c0" | bc -l)" '"\(.ram.transferred / 1048576 / (.["total-time"] / 1000)) \(($cpu | tonumber) / (.ram.transferred / 1073741824)) \(.downtime)"' "$WORK/q.json" >> "$WORK/q.txt"
    done
    local label="QEMU TLS, one channel"; [ $ch -gt 1 ] && label="QEMU TLS, multifd $ch channels"
    printf '  %-34s %9.0f %11.2f %12.1f\n' "$label" "$(cut -d' ' -f1 "$WORK/q.txt" | median)" "$(cut -d' ' -f2 "$WORK/q.txt" | median)" "$(cut -d' ' -f3 "$WORK/q.txt" | median)"
  done
  for n in 1 2 4; do
    for r in $(seq "$RUNS"); do measure "q N=$n $r" --memory 1G --rate 0 -- --streams $n; done
    jq -r --arg p "q N=$n " 'select(.name | startswith($p)) | "\(.rate) \(.cpu) \(.downtime)"' "$WORK/results.jsonl" > "$WORK/p.txt"
    printf '  %-34s %9.0f %11.2f %12.1f\n' "palm, $n stream(s), every protection" "$(cut -d' ' -f1 "$WORK/p.txt" | median)" \
      "$(cut -d' ' -f2 "$WORK/p.txt" | median)" "$(cut -d' ' -f3 "$WORK/p.txt" | median)"
  done
  echo "  (QEMU's guest vCPU runs under TCG, idle in the firmware; palm hashes every page on both ends with SHA-256, QEMU does not)"
}

bench_protection() {
  start_cluster
  echo "== Protected-migration handshake: TLS 1.3 + ticket (validated, replay-cached) + signed attestation, 200 connections =="
  "$BENCH" handshake --cert "$CERT" --key "$KEY" --ca "$CA" --coordinator-key "$COORD_KEY" --dest-cert "$CERT" \
    --port $PORT --count 200 | sort -g > "$WORK/hs.txt"
  awk '{a[NR]=$1} END {printf "  median %.2f ms, p99 %.2f ms, max %.2f ms over %d handshakes\n", a[int((NR+1)/2)]*1000, a[int(NR*0.99)]*1000, a[NR]*1000, NR}' "$WORK/hs.txt"

  echo "== What the protections add to a 1 GiB migration (idle guest, random data) =="
  local plain=() prot=()
  for _ in $(seq "$RUNS"); do
    "$BIN/palm-simguest" create pb --root $RA --memory 1G >/dev/null
    plain+=("$("$BENCH" engine-migrate --cert "$CERT" --key "$KEY" --ca "$CA" --source-root $RA --dest-root $RB --vm pb \
               --guest-binary "$BIN/palm-simguest" | awk '{print $1}')")
    "$BIN/palm-simguest" destroy pb --root $RB
    "$BIN/palm-simguest" create pb --root $RA --memory 1G >/dev/null
    prot+=("$(migrate pb 2>/dev/null | jq -r .totalSeconds)")
    "$BIN/palm-simguest" destroy pb --root $RB
  done
  local p q
  p=$(printf '%s\n' "${plain[@]}" | median)
  q=$(printf '%s\n' "${prot[@]}" | median)
  awk -v p="$p" -v q="$q" 'BEGIN { printf "  engine with TLS only %.2f s; protected (ticket, attestation, signed manifest/READY/COMMIT, journal, evidence) %.2f s; ratio %.3f\n", p, q, q/p }'
}

# The coordinator at cluster scale: one scheduling cycle over 1,000 hosts × 20,000 VMs, the
# heartbeats per second a daemon sustains from 1,000 agents (each with its own certificate and
# connection), and the daemon's memory at that size.
bench_coordinator() {
  local agents=${AGENTS:-1000}
  echo "== Coordinator: one scheduling cycle, 1,000 hosts × 20,000 VMs (real SQLite database) =="
  "$BENCH" scheduler-cycle --key "$COORD_KEY" --hosts 1000 --vms 20000 | sed 's/^/  /'

  echo "== Coordinator: heartbeats from $agents agents =="
  local pki=.build/bench-agents
  agent_certs "$agents"
  cat > "$WORK/coordinator.toml" <<EOT
[tls]
certificate = "$pki/issued/bench-coordinator.pem"
key = "$pki/issued/bench-coordinator.key"
ca = "$pki/ca.pem"
[listen]
address = "127.0.0.1"
port = 0
[state]
database = "$WORK/coordinator.sqlite"
[access]
policy = "deploy/policy.toml"
[scheduler]
auto_balance = false
EOT
  ulimit -n 8192
  "$BIN/palm-coordinator" serve --config "$WORK/coordinator.toml" > "$WORK/coord.out" 2> "$WORK/coord.err" &
  local cpid=$!
  until grep -q listening "$WORK/coord.out" 2>/dev/null; do kill -0 $cpid || { cat "$WORK/coord.err"; return 1; }; sleep 0.1; done
  local cport; cport=$(sed 's/.*://' "$WORK/coord.out")
  "$BENCH" heartbeats --server "127.0.0.1:$cport" --certs "$pki/issued" --ca "$pki/ca.pem" --agents "$agents" --seconds 10 | sed 's/^/  /'
  awk '/VmHWM|VmRSS/ {printf "  palm-coordinator %s %.0f MiB\n", $1, $2/1024}' /proc/$cpid/status
  echo "  database: $(du -m "$WORK/coordinator.sqlite" | cut -f1) MiB (+WAL $(du -m "$WORK/coordinator.sqlite-wal" 2>/dev/null | cut -f1) MiB)"
  kill $cpid; wait $cpid 2>/dev/null || true
  bench_coordinator_postgresql "$pki" "$agents"
}

# The same on PostgreSQL (a private cluster in $WORK, started and stopped here), and the failover
# time of two coordinators sharing it: kill -9 of the leader → first heartbeat the standby answers.
bench_coordinator_postgresql() {
  local pki=$1 agents=$2 bin owner=postgres port url pg
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  id -u postgres >/dev/null 2>&1 || owner=nobody
  PG_OWNER=$owner
  # The server runs as $owner (initdb refuses root), so its directory is outside the private $WORK.
  pg=$(mktemp -d /tmp/palm-bench-pg.XXXXXX) && PG_DIR=$pg && echo bench > "$pg/pw" && chown -R $owner "$pg"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  runuser -u $owner -- "$bin/initdb" -D "$pg/data" -U palm --pwfile "$pg/pw" --auth scram-sha-256 -E UTF8 >/dev/null
  runuser -u $owner -- "$bin/pg_ctl" -D "$pg/data" -l "$pg/log" -w start -o "-c listen_addresses=127.0.0.1 -p $port -k $pg" >/dev/null
  url="postgresql://palm:bench@127.0.0.1:$port"
  for db in cycle hb ha; do PGPASSWORD=bench psql "$url/postgres" -qAt -c "CREATE DATABASE $db"; done
  echo "== Coordinator on PostgreSQL 15 (same machine, durable commits): one scheduling cycle, 1,000 hosts × 20,000 VMs =="
  "$BENCH" scheduler-cycle --key "$COORD_KEY" --hosts 1000 --vms 20000 --url "$url/cycle" | sed 's/^/  /'
  echo "== Coordinator on PostgreSQL: heartbeats from $agents agents =="
  sed -e 's|^database = .*|backend = "postgresql"\nurl = "'"$url"'/hb"|' "$WORK/coordinator.toml" > "$WORK/coordinator-pg.toml"
  "$BIN/palm-coordinator" serve --config "$WORK/coordinator-pg.toml" > "$WORK/coord-pg.out" 2> "$WORK/coord-pg.err" &
  local cpid=$!
  until grep -q listening "$WORK/coord-pg.out" 2>/dev/null; do kill -0 $cpid || { cat "$WORK/coord-pg.err"; return 1; }; sleep 0.1; done
  "$BENCH" heartbeats --server "127.0.0.1:$(sed 's/.*://' "$WORK/coord-pg.out")" --certs "$pki/issued" --ca "$pki/ca.pem" --agents "$agents" --seconds 10 | sed 's/^/  /'
  kill $cpid; wait $cpid 2>/dev/null || true

  echo "== Coordinator failover on PostgreSQL (lease 1 s): kill -9 of the leader → first heartbeat the standby answers =="
  local a b pa pb
  for n in a b; do
    sed -e 's|^database = .*|backend = "postgresql"\nurl = "'"$url"'/ha"\nlease_s = 1|' -e 's|^port = 0|port = 0\nadvertise = "127.0.0.1:'$n'"|' "$WORK/coordinator.toml" > "$WORK/coord-$n.toml"
    "$BIN/palm-coordinator" serve --config "$WORK/coord-$n.toml" > "$WORK/coord-$n.out" 2> "$WORK/coord-$n.err" &
    eval "p$n=\$!"
    until grep -q listening "$WORK/coord-$n.out" 2>/dev/null; do sleep 0.1; done
  done
  sleep 1.5   # both have renewed at least once: one leads, the other follows (a settling time, not a measurement)
  if grep -q "leading the cluster" "$WORK/coord-a.err"; then a=$pa; b=b; else a=$pb; b=a; fi
  local t0 t1 standby
  standby=$(sed 's/.*://' "$WORK/coord-$b.out")
  t0=$(date +%s.%N); kill -9 $a
  until "$BENCH" heartbeats --server "127.0.0.1:$standby" --certs "$pki/issued" --ca "$pki/ca.pem" --agents 1 --seconds 0.05 --threads 1 | grep -qv " 0 heartbeats/s"; do :; done
  t1=$(date +%s.%N)
  awk -v a=$t0 -v b=$t1 'BEGIN {printf "  failover: %.2f s from kill -9 of the leader to the first heartbeat the standby answered (lease 1 s; target ≤ lease + 2 s)\n", b - a}'
  kill $pa $pb 2>/dev/null; wait $pa $pb 2>/dev/null || true
  runuser -u $owner -- "$bin/pg_ctl" -D "$pg/data" -m fast -w stop >/dev/null
  rm -rf "$pg"; PG_DIR=""
}

# The downtime prediction, case by case (REPEAT times each): predicted against actual, and where
# the actual downtime went (pause, final round, state, destination ready, commit).
bench_attestation() {
  echo "== What a TPM attestation adds to a migration's handshake (swtpm; a platform with $((${IMA_ENTRIES:-10000})) IMA entries) =="
  local t="$WORK/tpm"
  mkdir -p "$t/state" "$t/ca"
  printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' "$t/ca" "$t/ca" "$t/ca" "$t/ca" > "$t/localca.conf"
  printf 'create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = /etc/swtpm-localca.options\nactive_pcr_banks = sha256\n' "$t/localca.conf" > "$t/setup.conf"
  swtpm_setup --tpm2 --tpmstate "$t/state" --create-ek-cert --lock-nvram --overwrite --config "$t/setup.conf" >/dev/null
  swtpm socket --tpm2 --tpmstate dir="$t/state" --server type=unixio,path="$t/tpm.sock" --ctrl type=unixio,path="$t/tpm.sock.ctrl" \
    --flags not-need-init,startup-clear --daemon --pid file="$t/pid"
  "$BENCH" attestation --tcti "swtpm:path=$t/tpm.sock" --entries "${IMA_ENTRIES:-10000}" --cert "$CERT" --key "$KEY" > "$t/out"
  kill "$(cat "$t/pid")" 2>/dev/null || true
  awk '$1 != "evidence-bytes" && $1 != "tls-key-certify" {printf "  %-14s p50 %7.2f ms   p99 %7.2f ms\n", $1, $2, $3}' "$t/out"
  awk '$1 == "evidence-bytes" {printf "  %-14s %.1f KiB of logs in ATTEST\n", "evidence", $2 / 1024}' "$t/out"
  awk '$1 == "tls-key-certify" {printf "  %-14s %.2f ms, once at palm-dest start\n", $1, $2}' "$t/out"
  awk '$1 == "quote+verify" {q = $2} $1 == "software" {s = $2} END {if (s > 0) printf "  TPM attestation ÷ software attestation (p50, same run): %.0f×\n", q / s}' "$t/out"
  awk '$1 == "tls-sign-tpm" {q = $2} $1 == "tls-sign-file" {s = $2} END {if (s > 0) printf "  a handshake signature by the TLS key in the TPM ÷ by a key file (p50, same run): %.0f×\n", q / s}' "$t/out"
  echo "  targets: quote + verification ≤ 50 ms at p99 on swtpm; a 10,000-entry IMA log verified in ≤ 20 ms;"
  echo "  nothing on the page path or in the downtime (the quote is answered in ATTEST, before CONFIG)"

  local hosts=${AGENTS:-1000}
  echo "== Continuous attestation: the coordinator's CPU for one round of quotes from $hosts hosts (2,000 IMA entries each) =="
  agent_certs "$hosts"
  rm -rf "$t/state"; mkdir -p "$t/state"
  swtpm_setup --tpm2 --tpmstate "$t/state" --create-ek-cert --lock-nvram --overwrite --config "$t/setup.conf" >/dev/null
  swtpm socket --tpm2 --tpmstate dir="$t/state" --server type=unixio,path="$t/tpm.sock" --ctrl type=unixio,path="$t/tpm.sock.ctrl" \
    --flags not-need-init,startup-clear --daemon --pid file="$t/pid"
  "$BENCH" attestation-round --tcti "swtpm:path=$t/tpm.sock" --certs .build/bench-agents/issued --key "$COORD_KEY" --hosts "$hosts" > "$t/round"
  kill "$(cat "$t/pid")" 2>/dev/null || true
  awk '$1 != "plain" {printf "  %-7s round: %.2f CPU-s at the coordinator for the heartbeats answering its quote requests (%d hosts trusted after it)\n", $1, $2, $3; if ($1 == "steady") s = $2}
       $1 == "plain" {printf "  the same heartbeats with nothing due: %.2f CPU-s; the quotes'"'"' share of a steady round: %.2f CPU-s\n", $2, s - $2}' "$t/round"
  echo "  target: ≤ 1 CPU-s a round for 1,000 hosts (the steady round: nothing new measured since the last)"
}

# Agent certificates for the coordinator benchmarks, minted once and kept (1,000 take about a minute).
agent_certs() {
  local pki=.build/bench-agents
  if [ ! -f "$pki/issued/agent-$(($1 - 1)).pem" ]; then
    rm -rf "$pki"; certs/palm-ca --dir "$pki" init >/dev/null 2>&1
    certs/palm-ca --dir "$pki" host bench-coordinator --role coordinator --ip 127.0.0.1 >/dev/null 2>&1
    for i in $(seq 0 $(($1 - 1))); do certs/palm-ca --dir "$pki" host "agent-$i" >/dev/null 2>&1; done
  fi
}

bench_prediction() {
  local reps=${REPEAT:-3}
  echo "== Downtime prediction: predicted vs actual, with the actual downtime's phases (ms), $reps runs each =="
  printf '  %-16s %9s %9s %7s %7s %7s %7s %7s %7s\n' case actual predicted error pause final state ready commit
  for c in "1G idle N=1" "1G idle N=4" "1G moderate N=1" "1G moderate N=4" "4G idle N=4" "4G moderate N=4"; do
    read -r mem wl n <<<"$c"
    local args=(--memory "$mem" --rate 0) errors=() basis=""
    [ "$wl" = moderate ] && args=(--memory "$mem" --rate 10000 --pattern hot-set --working-set 64M)
    for r in $(seq "$reps"); do
      use_cluster "$BIN"
      measure "$c #$r" "${args[@]}" -- --streams "${n#N=}"
      jq -r --arg n "$c" '[$n, (.downtimeSeconds * 1000), (.predictedDowntimeSeconds * 1000),
          ((.predictedDowntimeSeconds - .downtimeSeconds) / .downtimeSeconds * 100),
          (.downtimePhases | .pause, .finalRound, .captureState, .destinationReady, .commit | . * 1000)] | @tsv' "$WORK/r.json" \
        | awk -F'\t' '{printf "  %-16s %6.1f ms %6.1f ms %+6.0f%% %7.2f %7.2f %7.2f %7.2f %7.2f\n", $1,$2,$3,$4,$5,$6,$7,$8,$9}'
      errors+=("$(jq -r '(.predictedDowntimeSeconds - .downtimeSeconds) / .downtimeSeconds * 100' "$WORK/r.json")")
      basis=$(jq -r .predictionBasis "$WORK/r.json")
    done
    printf '%s\n' "${errors[@]}" | median \
      | awk -v c="$c" -v b="$basis" '{printf "  %-16s median error %+.0f%% (last run predicted from the %s)\n", c, $1, b}'
  done
  echo "  target: prediction within ±30 % (idle and moderate, 1 GiB and 4 GiB); the first migration of a run has only the model,"
  echo "  later ones the measured cost of earlier hand-offs to the same destination (HandoffHistory)"
}

case "$WHICH" in
  tls) bench_tls;;
  migration) bench_migration;;
  prediction) bench_prediction;;
  batch) bench_batch;;
  link) bench_link;;
  codecs) bench_codecs;;
  qemu) bench_qemu;;
  protection) bench_protection;;
  coordinator) bench_coordinator;;
  attestation) bench_attestation;;
  all) bench_tls; bench_migration; bench_qemu; bench_link; bench_codecs; bench_protection; bench_attestation; bench_coordinator;;
  *) echo "bench.sh: unknown benchmark '$WHICH' (tls, migration, prediction, batch, link, codecs, qemu, protection, attestation, coordinator, all)" >&2; exit 2;;
esac
