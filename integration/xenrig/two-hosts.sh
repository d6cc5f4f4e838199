#!/usr/bin/env bash
# Two Xen hosts: the rig's image (build-rig.sh) booted twice under QEMU (TCG), their dom0s on one
# Ethernet segment — a bridge in a network namespace this script makes (10.99.0.1/24 there), each
# QEMU's NIC a tap device on it — so traffic between the hosts crosses a real link the script can
# shape or cut, and a watcher outside both hosts sits on the segment. Host A moves a PVH guest to
# host B with palm-source → palm-dest across that link (job-two.sh); B checks it runs there.
# Exit 0 iff both hosts' jobs passed; 3 when the emulation failed (a host never finished its job).
#   integration/xenrig/two-hosts.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=integration/xenrig
need=()
for p in qemu-system-x86_64:qemu-system-x86 qemu-nbd:qemu-utils zstd:zstd cpio:cpio gcc:gcc; do command -v "${p%%:*}" >/dev/null || need+=("${p##*:}"); done
[ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
CACHE=${XENRIG_CACHE:-/var/cache/palm/xenrig}
T0=$(date +%s)
"$HERE/build-rig.sh" "$CACHE"
WORK=$(mktemp -d /tmp/palm-xenrig2.XXXXXX)
NS=palmrig2-$$
PIDS=()
cleanup() {
  [ -f "$WORK/nbd.pid" ] && kill "$(cat "$WORK/nbd.pid")" 2>/dev/null
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"$HERE/stage.sh" "$CACHE" "$WORK/dom0.cpio.zst"
T1=$(date +%s)

# The segment: a bridge in a namespace of its own, one tap per host. Nothing leaves the namespace.
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add br0 type bridge
ip -n "$NS" addr add 10.99.0.1/24 dev br0
for h in a b; do
  ip -n "$NS" tuntap add "tap-$h" mode tap
  ip -n "$NS" link set "tap-$h" master br0 up
done
ip -n "$NS" link set br0 up
# The link as the graded runs have it: 1 Gbit/s each way (tbf on the taps; this kernel has no netem).
for h in a b; do ip netns exec "$NS" tc qdisc add dev "tap-$h" root tbf rate 1gbit burst 256kb latency 20ms; done
gcc -O2 -Wall -o "$WORK/netwatch" "$HERE/tools/netwatch.c"
# Shared storage outside both hosts: the guest's raw disk served over NBD on the segment (export
# "pvh"); both dom0s attach it as /dev/nbd0, as hosts attach a SAN volume under one name.
truncate -s 16M "$WORK/pvh-disk.img"
ip netns exec "$NS" qemu-nbd --fork --persistent --shared=4 -f raw -x pvh --bind 10.99.0.1 --port 10809 \
  --pid-file "$WORK/nbd.pid" "$WORK/pvh-disk.img"

# The watcher outside both hosts: netwatch on the segment (ping every 10 ms and a TCP connection
# to the guest's echo server), started and stopped when a host's job asks — a line
# "XENRIG-WATCH start|stop NAME HOST_IP" on its serial console — and acknowledged by connecting
# to that host's port 7998 once it is ready (or has printed its result).
watcher() {  # HOST QEMU_PID
  local pid="" name
  tail --pid="$2" -n +1 -F "$WORK/$1/serial.log" 2>/dev/null | while read -r tag action name ip _; do
    [ "$tag" = XENRIG-WATCH ] || continue
    ip=$(printf '%s' "$ip" | tr -cd '0-9.')   # the serial console's line ends (\r) and nothing else
    echo "$(date +%T) $action $name for $ip" >> "$WORK/watcher-$1.log"
    case $action in
      start)
        ip netns exec "$NS" "$WORK/netwatch" 10.99.0.2 7000 < /dev/null > "$WORK/net-$name" 2>&1 &
        pid=$!
        for _ in $(seq 1 180); do grep -q "netwatch: ready" "$WORK/net-$name" && break; kill -0 $pid 2>/dev/null || break; sleep 0.5; done ;;
      stop)
        [ -n "$pid" ] && { kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=""; } ;;
    esac
    for _ in $(seq 1 20); do
      ip netns exec "$NS" timeout 5 bash -c "exec 3<>/dev/tcp/$ip/7998" < /dev/null >> "$WORK/watcher-$1.log" 2>&1 && break
      sleep 0.5
    done
  done
}

boot() {  # HOST MAC
  local share="$WORK/$1"
  mkdir -p "$share"
  { [ -n "${MEMCHECK:-}" ] && echo "export MEMCHECK=$MEMCHECK"; cat "$HERE/job-lib.sh" "$HERE/job-two.sh"; } > "$share/run.sh"
  ip netns exec "$NS" timeout "${XENRIG_TIMEOUT:-1800}" qemu-system-x86_64 -accel tcg,thread=multi \
    -cpu max,-rdtscp,-avx,-avx2,-pcid,-invpcid,-xsave -M pc -m 3072 -smp 3 -no-reboot -display none -monitor none \
    -chardev "file,id=com1,path=$share/serial.log" -serial chardev:com1 \
    -kernel "$CACHE/xen" \
    -append "console=com1 com1=115200,8n1 dom0_mem=1536M,max:1536M dom0_max_vcpus=2 dom0_vcpus_pin smap=0 pcid=0" \
    -initrd "$CACHE/vmlinuz console=hvc0 rdinit=/init palmhost=$1,$WORK/dom0.cpio.zst" \
    -netdev "tap,id=n0,ifname=tap-$1,script=no,downscript=no" -device "virtio-net-pci,netdev=n0,mac=$2" \
    -virtfs "local,path=$share,mount_tag=host0,security_model=none,id=host0" > "$share/qemu.log" 2>&1 &
  PIDS+=($!)
}
echo "booting two Xen 4.17 hosts under QEMU (TCG) on one segment…"
boot a 52:54:00:99:00:11
watcher a "${PIDS[0]}" &
boot b 52:54:00:99:00:12
watcher b "${PIDS[1]}" &
status=0
for p in "${PIDS[@]}"; do wait "$p" || status=$?; done
PIDS=()
T2=$(date +%s)
LAST=.build/xenrig2-last
rm -rf "$LAST"; mkdir -p "$LAST"
ok=0
for h in a b; do
  echo "== host $h =="
  if [ -f "$WORK/$h/out.log" ]; then cat "$WORK/$h/out.log"; else echo "no job output; serial console:"; tail -40 "$WORK/$h/serial.log"; fi
  mkdir -p "$LAST/$h"; cp "$WORK/$h"/*.log "$WORK/$h"/*.tail "$LAST/$h/" 2>/dev/null || true
  cp "$WORK"/net-* "$WORK"/watcher-* "$LAST/" 2>/dev/null || true
  grep -q "XENRIG: job rc=0" "$WORK/$h/out.log" 2>/dev/null && ok=$((ok + 1))
done
{
  echo "== 128 MiB PVH guest across two Xen hosts under QEMU TCG, a 1 Gbit/s link between their dom0s; watched from outside both =="
  printf '%-26s %9s %12s %16s %15s %7s %12s %12s\n' "" "total s" "downtime ms" "network gap ms" "TCP connection" rounds "wire bytes" compression
  cat "$WORK"/a/out.log "$WORK"/b/out.log 2>/dev/null | tr -d '\r' | while read -r tag name total down rounds bytes compression; do
    [ "$tag" = XENRIG-MOVE ] || continue
    net() { sed -n "s/.*\b$1=\([a-z0-9.]*\).*/\1/p" "$WORK/net-$name" 2>/dev/null | tail -1; }
    case $name in palm) what="palm A → B (mTLS, ticket)" ;; xl) what="xl migrate B → A (plain)" ;; *) what=$name ;; esac
    printf '%-26s %9s %12s %16s %15s %7s %12s %12s\n' "$what" "$total" "$down" "$(net ping_gap_ms)" "$(net tcp)" "$rounds" "$bytes" "$compression"
  done
  echo "(downtime: as palm-source measured it; xl reports none across hosts — the network gap is the measure both share)"
} | tee "$WORK/results.txt"
echo
echo "timings: rig and static build $((T1 - T0)) s, two hosts' boot + job + power-off $((T2 - T1)) s (logs in $LAST)"
[ $ok -eq 2 ] && { echo "two-host xen integration: passed"; exit 0; }
for h in a b; do
  grep -q "XENRIG: job rc=" "$WORK/$h/out.log" 2>/dev/null || { echo "two-host xen integration: FAILED (emulation: host $h never finished its job)"; exit 3; }
done
if grep -q "^FAIL: guest booted on host A" "$WORK/a/out.log"; then
  echo "two-host xen integration: FAILED (emulation: the guest did not boot)"; exit 3
fi
echo "two-host xen integration: FAILED"
exit 1
