#!/usr/bin/env bash
# Benchmarks: print measurements and ratios measured in this one run. Nothing here asserts speed.
#   scripts/bench.sh [tls|migration|protection|coordinator]      (default: all)
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
DEST_PID="" PORT=""
trap 'rm -rf "$WORK" $RA $RB; [ -n "$DEST_PID" ] && kill $DEST_PID 2>/dev/null; true' EXIT

# A two-"host" cluster on loopback: both hosts use the bench certificate, the destination runs
# palm-dest (release) with the coordinator's certificate, the source allows its measurement.
start_cluster() {
  [ -n "$DEST_PID" ] && return
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

bench_migration() {
  echo "== Migration of a 1 GiB sim guest (random data): multi-pass pre-copy vs stop-and-copy =="
  # This machine backs fresh memory lazily (~350 MB/s on first touch); touch it once so guests and
  # incoming images are not timed against the host's allocator.
  dd if=/dev/zero of=/dev/shm/palm-bench-warm bs=1M count=6144 status=none; rm -f /dev/shm/palm-bench-warm
  local ra=$RA rb=$RB
  start_cluster
  local dest=$DEST_PID port=$PORT
  local bare; bare=$(bare_stream_rate)
  printf '%-10s %-14s %8s %10s %10s %7s %9s %10s %9s\n' workload mode "total s" "downtime" predicted rounds "MiB/s" "round0 MiB/s" "CPU-s/GiB" | tee "$WORK/table.txt"
  : > "$WORK/plot.dat"
  for wl in idle moderate heavy; do
    case $wl in
      idle) args=(--rate 0);;
      moderate) args=(--rate 10000 --pattern hot-set --working-set 64M);;
      heavy) args=(--rate 1000000 --pattern uniform);;
    esac
    local line="$wl"
    for mode in pre-copy stop-and-copy; do
      "$BIN/palm-simguest" create bench --root $ra --memory 1G "${args[@]}" >/dev/null
      local c0; c0=$(cpu_of $dest)
      migrate bench --mode $mode > "$WORK/r.json" 2>"$WORK/src.log" \
        || { cat "$WORK/src.log"; exit 1; }
      local c1; c1=$(cpu_of $dest)
      "$BIN/palm-simguest" destroy bench --root $rb
      jq -r --arg wl $wl --arg mode $mode --arg dcpu "$(echo "$c1 - $c0" | bc -l)" '
        [$wl, $mode, .totalSeconds, .downtimeSeconds * 1000, .predictedDowntimeSeconds * 1000, (.rounds | length),
         .throughputMiBps, (.rounds[0].bytes / 1048576 / .rounds[0].seconds),
         ((.sourceCPUSeconds + ($dcpu | tonumber)) / (.bytesOnWire / 1073741824))] |
        "\(.[0])\t\(.[1])\t\(.[2])\t\(.[3])\t\(.[4])\t\(.[5])\t\(.[6])\t\(.[7])\t\(.[8])"' "$WORK/r.json" \
        | awk -F'\t' '{printf "%-10s %-14s %8.2f %8.1f ms %7.1f ms %7d %9.1f %12.1f %9.2f\n", $1,$2,$3,$4,$5,$6,$7,$8,$9}' | tee -a "$WORK/table.txt"
      line="$line $(jq -r '.totalSeconds' "$WORK/r.json") $(jq -r '.downtimeSeconds * 1000' "$WORK/r.json")"
      [ $wl = idle ] && [ $mode = pre-copy ] && jq -r '.rounds[0].bytes / .rounds[0].seconds' "$WORK/r.json" > "$WORK/idle-rate"
    done
    echo "$line" >> "$WORK/plot.dat"
  done
  awk -v b="$bare" -v i="$(cat "$WORK/idle-rate")" 'BEGIN {
    printf "  bare OpenSSL TLS 1.3 stream: %.1f MiB/s; idle 1 GiB pre-copy round 0: %.1f MiB/s; ratio %.3f (target >= 0.8)\n", b/1048576, i/1048576, i/b }'
  awk '{ printf "  %s: downtime stop-and-copy / pre-copy = %.1fx\n", $1, $5 / ($3 > 0 ? $3 : 1) }' "$WORK/plot.dat"

  local png=${PALM_BENCH_PNG:-palm-figure5.png}
  gnuplot <<PLOT
set terminal pngcairo size 900,420 noenhanced
set output "$png"
set multiplot layout 1,2 title "palm: 1 GiB sim guest, multi-pass pre-copy vs stop-and-copy (measured)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set grid ytics
set ylabel "total migration time (s)"
set yrange [0:*]
plot "$WORK/plot.dat" using 2:xtic(1) title "pre-copy", "" using 4 title "stop-and-copy"
set ylabel "downtime (ms)"
set yrange [1:*]
set logscale y
plot "$WORK/plot.dat" using 3:xtic(1) title "pre-copy", "" using 5 title "stop-and-copy"
unset multiplot
PLOT
  echo "  figure: $png"

  echo "== Agent memory while a 4 GiB guest migrates (moderate workload) =="
  "$BIN/palm-simguest" create big --root $ra --memory 4G --rate 10000 --pattern hot-set --working-set 64M >/dev/null
  "$BIN/palm-coordinator" ticket issue --key "$COORD_KEY" --vm big --memory 4G --source-cert "$CERT" --dest-cert "$CERT" --out "$WORK/ticket" >/dev/null
  /usr/bin/time -f "%M" -o "$WORK/src.rss" "$BIN/palm-source" migrate big --to 127.0.0.1:$port --config "$WORK/a.toml" --ticket "$WORK/ticket" --json > "$WORK/big.json" 2>/dev/null
  local hwm; hwm=$(awk '/VmHWM/ {print $2}' /proc/$dest/status)
  "$BIN/palm-simguest" destroy big --root $rb
  printf "  palm-source peak RSS %.1f MiB, palm-dest peak RSS %.1f MiB (guest RAM 4096 MiB; total %.1f s, downtime %.1f ms)\n" \
    "$(echo "$(cat "$WORK/src.rss") / 1024" | bc -l)" "$(echo "$hwm / 1024" | bc -l)" \
    "$(jq -r .totalSeconds "$WORK/big.json")" "$(jq -r '.downtimeSeconds * 1000' "$WORK/big.json")"
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
  # Agent certificates are minted once and kept (minting 1,000 takes about a minute).
  local pki=.build/bench-agents
  if [ ! -f "$pki/issued/agent-$((agents - 1)).pem" ]; then
    rm -rf "$pki"; certs/palm-ca --dir "$pki" init >/dev/null 2>&1
    certs/palm-ca --dir "$pki" host bench-coordinator --role coordinator --ip 127.0.0.1 >/dev/null 2>&1
    for i in $(seq 0 $((agents - 1))); do certs/palm-ca --dir "$pki" host "agent-$i" >/dev/null 2>&1; done
  fi
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
}

case "$WHICH" in
  tls) bench_tls;;
  migration) bench_migration;;
  protection) bench_protection;;
  coordinator) bench_coordinator;;
  all) bench_tls; bench_migration; bench_protection; bench_coordinator;;
  *) echo "bench.sh: unknown benchmark '$WHICH' (tls, migration, protection, coordinator, all)" >&2; exit 2;;
esac
