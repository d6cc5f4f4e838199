#!/usr/bin/env bash
# The main job: a local two-host palm cluster with the sim hypervisor, driven by the coordinator.
# Host A runs a VM whose workload keeps dirtying memory; an operator asks palm-coordinator to move
# it to host B; the coordinator signs a ticket, host A's palm-source takes the order with its next
# heartbeat and live-migrates the VM to host B's palm-dest over mutual TLS 1.3 after B attested
# itself. Everything it creates — daemons, sim guests, their /dev/shm roots, the work directory —
# is removed at the end, also when a step fails or the demo is interrupted (Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${PALM_BIN:-.build/release}
for exe in palm-source palm-dest palm-coordinator palm-simguest; do
  [ -x "$BIN/$exe" ] || { echo "demo: $BIN/$exe is missing; run scripts/setup.sh" >&2; exit 1; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/palm-demo.XXXXXX")
ROOT_A=/dev/shm/palm-demo-$$-a ROOT_B=/dev/shm/palm-demo-$$-b
PIDS=()   # every daemon, started in this shell (never in a $(…) subshell, whose PIDs would be lost)
cleanup() {
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for r in "$ROOT_A" "$ROOT_B"; do
    for vm in $("$BIN/palm-simguest" list --root "$r" 2>/dev/null | cut -f1); do
      "$BIN/palm-simguest" destroy "$vm" --root "$r" || true
    done
    rm -rf "$r"
  done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'echo "demo: interrupted; removing what it created" >&2; exit 130' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# listening VAR OUT COMMAND…: starts a daemon in this shell (so cleanup knows its PID), waits for
# its "listening on" line in OUT, and sets VAR to the port.
listening() {
  local var=$1 out=$2; shift 2
  "$@" > "$out" 2> "$out.log" &
  PIDS+=($!)
  until grep -q listening "$out" 2>/dev/null; do
    kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$out.log" >&2; exit 1; }
    sleep 0.1
  done
  printf -v "$var" '%s' "$(awk -F: '/listening/ {print $NF}' "$out")"
}

step "1. a cluster CA; certificates for two hosts, the coordinator and an operator (certs/palm-ca)"
certs/palm-ca --dir "$W/ca" init
certs/palm-ca --dir "$W/ca" host host-a --ip 127.0.0.1 >/dev/null
certs/palm-ca --dir "$W/ca" host host-b --ip 127.0.0.1 >/dev/null
certs/palm-ca --dir "$W/ca" host coordinator --role coordinator --ip 127.0.0.1 >/dev/null
certs/palm-ca --dir "$W/ca" operator ops --role operator >/dev/null
certs/palm-ca --dir "$W/ca" list
CA="$W/ca/ca.pem" I="$W/ca/issued"

tls() { printf '[tls]\ncertificate = "%s"\nkey = "%s"\nca = "%s"\n' "$I/$1.pem" "$I/$1.key" "$CA"; }
for h in a b; do
  { tls host-$h
    printf '[hypervisor]\ndriver = "sim"\n[sim]\nroot = "/dev/shm/palm-demo-%s-%s"\nmemory_limit = "2G"\n' $$ $h
    printf '[listen]\naddress = "127.0.0.1"\nport = 0\n[security]\ncoordinator_certificate = "%s"\n' "$I/coordinator.pem"
    printf '[state]\ndirectory = "%s"\n' "$W/dest-$h"; } > "$W/dest-$h.toml"
done

step "2. the coordinator: allows exactly what the two palm-dest measure, and serves"
{ tls coordinator
  printf '[listen]\naddress = "127.0.0.1"\nport = 0\n[state]\ndatabase = "%s"\n[access]\npolicy = "deploy/policy.toml"\n' "$W/coordinator.sqlite"
  printf '[agents]\nheartbeat_interval_s = 1\n[scheduler]\ninterval_s = 1\nauto_balance = false\n[attestation]\n'
  printf '# the demo hosts have no TPM: the cluster accepts their software attestation, and says so\nrequire = "software"\n'
  for key in allowed_agents allowed_configs allowed_hypervisors; do
    printf '%s = [%s]\n' $key "$(for h in a b; do "$BIN/palm-dest" measure --config "$W/dest-$h.toml"; done \
      | awk -F'"' -v k=$key '$0 ~ "^" k {print "\"" $2 "\""}' | sort -u | paste -sd, -)"
  done; } > "$W/coordinator.toml"
sed -n '/\[attestation\]/,$p' "$W/coordinator.toml" | sed 's/^/  /'
listening CPORT "$W/coordinator.out" "$BIN/palm-coordinator" serve --config "$W/coordinator.toml"
echo "  palm-coordinator listening on 127.0.0.1:$CPORT"
export PALM_SERVER=127.0.0.1:$CPORT PALM_CERT=$I/ops.pem PALM_KEY=$I/ops.key PALM_CA=$CA

step "3. each host: palm-dest listening, palm-source serve reporting to the coordinator"
for h in a b; do
  listening port "$W/dest-$h.out" "$BIN/palm-dest" serve --config "$W/dest-$h.toml"
  { tls host-$h
    printf '[hypervisor]\ndriver = "sim"\n[sim]\nroot = "/dev/shm/palm-demo-%s-%s"\nmemory_limit = "2G"\n' $$ $h
    printf '[state]\ndirectory = "%s"\n' "$W/source-$h"
    printf '[coordinator]\naddress = "127.0.0.1:%s"\ncertificate = "%s"\nadvertise = "127.0.0.1:%s"\n' "$CPORT" "$I/coordinator.pem" "$port"
  } > "$W/source-$h.toml"
  "$BIN/palm-source" serve --config "$W/source-$h.toml" 2> "$W/source-$h.log" &
  PIDS+=($!)
  echo "  host-$h: palm-dest on 127.0.0.1:$port, palm-source serve"
done

step "4. host A: a 512 MiB VM dirtying 10,000 pages/s in a 64 MiB hot set"
"$BIN/palm-simguest" create demo-vm --root "$ROOT_A" --memory 512M --rate 10000 --pattern hot-set --working-set 64M
until "$BIN/palm-coordinator" vms 2>/dev/null | grep -q demo-vm; do sleep 0.2; done
"$BIN/palm-coordinator" hosts
echo
"$BIN/palm-coordinator" vms

step "5. the operator: palm-coordinator migrate demo-vm --to host-b --wait"
"$BIN/palm-coordinator" migrate demo-vm --to host-b --wait || { cat "$W"/source-a.log "$W"/dest-b.out.log; exit 1; }
grep -E "ordered|round [0-9]+:|stop-and-copy|committed|attested" "$W/source-a.log" | sed 's/^.*\] /  host-a palm-source: /'
grep -E "manifest verified|resumed here" "$W/dest-b.out.log" | sed 's/^.*\] /  host-b palm-dest: /'

step "6. afterwards: the VM runs on host B only, and its own memory check passes"
echo "host A:"; "$BIN/palm-simguest" list --root "$ROOT_A" | sed 's/^/  /'; echo "  (no VMs)"
echo "host B:"; "$BIN/palm-simguest" list --root "$ROOT_B" | sed 's/^/  /'
"$BIN/palm-simguest" check demo-vm --root "$ROOT_B" | sed 's/^/  /'

step "7. what the coordinator recorded"
until "$BIN/palm-coordinator" vms 2>/dev/null | grep -q "demo-vm.*host-b"; do sleep 0.2; done
"$BIN/palm-coordinator" history
echo
"$BIN/palm-coordinator" rebalance --dry-run
echo
"$BIN/palm-coordinator" audit verify --db "$W/coordinator.sqlite" --coordinator-cert "$I/coordinator.pem"
echo
echo "demo complete."
