#!/usr/bin/env bash
# The main job: a local two-host palm cluster with the sim hypervisor. Host A runs a VM whose
# workload keeps dirtying memory; palm-source live-migrates it to host B's palm-dest over mutual
# TLS 1.3; the report shows every round. Everything it creates is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${PALM_BIN:-.build/release}
for exe in palm-source palm-dest palm-coordinator palm-simguest; do
  [ -x "$BIN/$exe" ] || { echo "demo: $BIN/$exe is missing; run scripts/setup.sh" >&2; exit 1; }
done

W=$(mktemp -d /tmp/palm-demo.XXXXXX)
ROOT_A=/dev/shm/palm-demo-$$-a ROOT_B=/dev/shm/palm-demo-$$-b
DEST_PID=""
cleanup() {
  if [ -n "$DEST_PID" ]; then kill "$DEST_PID" 2>/dev/null || true; wait "$DEST_PID" 2>/dev/null || true; fi
  for r in "$ROOT_A" "$ROOT_B"; do
    for vm in $("$BIN/palm-simguest" list --root "$r" 2>/dev/null | cut -f1); do
      "$BIN/palm-simguest" destroy "$vm" --root "$r" || true
    done
    rm -rf "$r"
  done
  rm -rf "$W"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. a cluster CA, two host certificates and the coordinator's (certs/palm-ca)"
certs/palm-ca --dir "$W/ca" init
certs/palm-ca --dir "$W/ca" host host-a --ip 127.0.0.1 >/dev/null
certs/palm-ca --dir "$W/ca" host host-b --ip 127.0.0.1 >/dev/null
certs/palm-ca --dir "$W/ca" host coordinator --role coordinator >/dev/null
certs/palm-ca --dir "$W/ca" list

for h in a b; do
  cat > "$W/host-$h.toml" <<CONF
[tls]
certificate = "$W/ca/issued/host-$h.pem"
key = "$W/ca/issued/host-$h.key"
ca = "$W/ca/ca.pem"

[hypervisor]
driver = "sim"

[sim]
root = "/dev/shm/palm-demo-$$-$h"
memory_limit = "4G"

[policy]
downtime_target_ms = 100
CONF
done
sed -i '/^\[policy\]/,$d' "$W/host-b.toml"
printf '\n[listen]\naddress = "127.0.0.1"\nport = 0\n' >> "$W/host-b.toml"
printf '\n[security]\ncoordinator_certificate = "%s"\n' "$W/ca/issued/coordinator.pem" >> "$W/host-b.toml"
printf '\n[state]\ndirectory = "%s"\n' "$W/state-b" >> "$W/host-b.toml"
# Host A accepts host B only if B runs the palm-dest it measured (attestation allowlist).
printf '\n[attestation]\n' >> "$W/host-a.toml"
"$BIN/palm-dest" measure --config "$W/host-b.toml" >> "$W/host-a.toml"

step "2. host B: palm-dest listening"
"$BIN/palm-dest" serve --config "$W/host-b.toml" > "$W/dest.out" 2> "$W/dest.log" &
DEST_PID=$!
until grep -q listening "$W/dest.out" 2>/dev/null; do
  kill -0 "$DEST_PID" 2>/dev/null || { cat "$W/dest.log"; exit 1; }
  sleep 0.1
done
PORT=$(awk -F: '/listening/ {print $NF}' "$W/dest.out")
cat "$W/dest.out"

step "3. host A: a 512 MiB VM dirtying 10,000 pages/s in a 64 MiB hot set"
"$BIN/palm-simguest" create demo-vm --root "$ROOT_A" --memory 512M --rate 10000 --pattern hot-set --working-set 64M
echo "host A:"; "$BIN/palm-simguest" list --root "$ROOT_A" | sed 's/^/  /'

step "4. the coordinator's ticket, then live migration A → B (pre-copy, downtime target 100 ms)"
"$BIN/palm-coordinator" ticket issue --key "$W/ca/issued/coordinator.key" --vm demo-vm --memory 512M \
  --source-cert "$W/ca/issued/host-a.pem" --dest-cert "$W/ca/issued/host-b.pem" --out "$W/ticket"
"$BIN/palm-source" migrate demo-vm --to "127.0.0.1:$PORT" --config "$W/host-a.toml" --ticket "$W/ticket" 2> "$W/source.log" \
  || { cat "$W/source.log" "$W/dest.log"; exit 1; }
grep -E "round [0-9]+:|stop-and-copy|committed|attested" "$W/source.log" | sed 's/^.*\] /  source: /'

step "5. afterwards: the VM runs on host B only, and its own memory check passes"
echo "host A:"; "$BIN/palm-simguest" list --root "$ROOT_A" | sed 's/^/  /'; echo "  (no VMs)"
echo "host B:"; "$BIN/palm-simguest" list --root "$ROOT_B" | sed 's/^/  /'
"$BIN/palm-simguest" check demo-vm --root "$ROOT_B" | sed 's/^/  /'
grep -E "manifest verified|resumed here" "$W/dest.log" | sed 's/^.*\] /  dest: /'
echo
echo "demo complete."
