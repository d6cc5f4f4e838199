# Runs inside each dom0 of the two-host rig (integration/xenrig/two-hosts.sh; the common helpers
# come first, from job-lib.sh). The kernel command line says which host this is (palmhost=a|b).
# Host A creates the guest (vif on its bridge, which reaches the other host and the watcher over
# the rig's segment; disk on the shared NBD export). (1) palm-source sends it to host B, whose
# palm-dest is killed at pre-copy: the guest stays on A, its one writer. (2) palm-source moves it
# to B's restarted palm-dest, across the wire; B checks it runs there. (3) xl migrate brings it
# back B → A. After each: which host's domains hold the disk, and the disk's data. They meet over the network: B's palm-dest listens on
# 10.99.0.12:7500; A tells B it is done on port 7999.
ROLE=$(sed -n 's/.*palmhost=\([ab]\).*/\1/p' /proc/cmdline)
A_IP=10.99.0.11 B_IP=10.99.0.12 GUEST_IP=10.99.0.2
case $ROLE in a) ME=$A_IP ;; b) ME=$B_IP ;; *) fail "palmhost=a|b on the kernel command line"; finish ;; esac
t "host $ROLE"
# dom0's NIC on a bridge its guests' vifs join: the segment the rig's other host and watcher share.
modprobe virtio_net 2>/dev/null
{ ip link add xenbr0 type bridge && ip link set eth0 master xenbr0 && ip link set eth0 up \
  && ip addr add $ME/24 dev xenbr0 && ip link set xenbr0 up; } || { fail "dom0 bridge xenbr0 on eth0"; finish; }
check "host $ROLE reaches the rig's segment (10.99.0.1)" within 60 busybox ping -c 1 -W 1 10.99.0.1
# The guest's disk on shared storage: the same NBD export on both hosts, under the same name.
modprobe nbd 2>/dev/null
check "host $ROLE attaches the shared disk (NBD export pvh from 10.99.0.1 as /dev/nbd0)" \
  sh -c "nbd-client 10.99.0.1 10809 /dev/nbd0 -N pvh > $W/nbd.log 2>&1 && [ \$(blockdev --getsize64 /dev/nbd0) -gt 0 ]"
# How many running domains of this host have /dev/nbd0 as a disk (xenstore's block backends).
writers() {
  local n=0 d
  for d in $(xenstore-list /local/domain/0/backend/vbd 2>/dev/null); do
    for v in $(xenstore-list /local/domain/0/backend/vbd/$d 2>/dev/null); do
      [ "$(xenstore-read /local/domain/0/backend/vbd/$d/$v/params 2>/dev/null)" = /dev/nbd0 ] || continue
      xl list $d 2>/dev/null | awk 'NR == 2 {exit ($5 ~ /[rb]/) ? 0 : 1}' && n=$((n + 1))
    done
  done
  echo $n
}
no_writers() { [ "$(writers)" = 0 ]; }
disksum() { timeout 60 busybox nc $GUEST_IP 7001 </dev/null 2>/dev/null | tr -d ' \n'; }
CA=$CADIR/ca.pem
certs() { printf '[tls]\ncertificate = "%s"\nkey = "%s"\nca = "%s"\n' "$1" "$2" "$CA"; }
CC=$CADIR/issued/xenrig-coordinator.pem
CA_=$CADIR/issued/host-a.pem KA=$CADIR/issued/host-a.key CB=$CADIR/issued/host-b.pem KB=$CADIR/issued/host-b.key
# B's palm-dest configuration, written the same on both hosts: A measures it for its allowlist.
dest_b() { certs "$CB" "$KB"; printf '[hypervisor]\ndriver = "xen"\n[xen]\nsuspend_timeout_s = 60\n[listen]\naddress = "%s"\nport = 7500\n[security]\ncoordinator_certificate = "%s"\n[state]\ndirectory = "%s"\n' $B_IP "$CC" $W/dest-state; }
dest_b > $W/dest-b.toml
# The watcher outside both hosts (two-hosts.sh, on the segment): asked to start before a move and
# to stop after it, each time through the serial console; it answers on port 7998 when done.
watch() {  # start|stop NAME
  timeout 120 busybox nc -l -p 7998 < /dev/null > /dev/null &
  local ack=$!
  # Listening (port 7998 = 1F3E in /proc/net/tcp, state 0A) before the watcher is asked.
  within 10 grep -q ":1F3E 00000000:0000 0A" /proc/net/tcp
  echo "XENRIG-WATCH $1 $2 $ME"
  wait $ack || fail "the watcher outside the hosts answered ($1 $2)"
}
# One line per move for two-hosts.sh's table: NAME total_s downtime_ms rounds bytes compression.
move_line() { echo "XENRIG-MOVE $*"; }
field() { sed -n "s/^ *\"$1\" : \"*\([^,\"]*\)\"*,*$/\1/p" $W/palm.json | head -1; }

if [ $ROLE = b ]; then
  # First a palm-dest that dies mid-transfer: stopped at pre-copy by its fault point, then killed.
  PALM_TEST_STOP_AT=precopy $B/palm-dest serve --config $W/dest-b.toml > $W/dest-fault.out 2> $W/dest-fault.log &
  DEST=$!
  check "palm-dest listening on host B ($B_IP:7500), armed to stop at pre-copy" within 60 grep -q listening $W/dest-fault.out
  if within 600 grep -q "stopping at fault point precopy" $W/dest-fault.log; then
    kill -9 $DEST; wait $DEST 2>/dev/null
    pass "palm-dest on host B reached pre-copy and was killed (kill -9)"
  else
    fail "palm-dest on host B reached the pre-copy fault point"; kill -9 $DEST 2>/dev/null
  fi
  # Restarted (as its unit's Restart= does): its recovery destroys what the killed one built.
  $B/palm-dest serve --config $W/dest-b.toml > $W/dest.out 2> $W/dest.log &
  DEST=$!
  check "palm-dest restarted on host B" within 60 grep -q listening $W/dest.out
  check "the restarted palm-dest destroys the half-built incoming domain: no guest domain on host B" \
    within 60 sh -c "! xl list | awk 'NR > 1 && \$2 != 0' | grep -q ."
  check "no domain of host B has the shared disk after the failed move" no_writers
  # Until host A says it is done, however its job ended (or 20 minutes pass).
  timeout 1200 busybox nc -l -p 7999 > $W/verdict < /dev/null
  cat $W/verdict
  if grep -q "^moved" $W/verdict; then
    check "pvh runs on host B after the move" within 60 sh -c "xl list pvh 2>/dev/null | awk 'NR == 2 {exit (\$5 ~ /[rb]/) ? 0 : 1}'"
    check "the guest's console continues on host B" within 90 sh -c "[ \$(cat /var/log/xen/console/guest-pvh*.log | grep -c 'domU alive') -ge 2 ]"
    check "palm-dest received the guest on host B" grep -q "received pvh" $W/dest.log
    check "exactly one domain of host B, pvh, has the shared disk" [ "$(writers)" = 1 ]
    # The same guest back to host A with xl migrate over the same link, for comparison (A runs
    # xl's receiver behind port 8002; xl reaches it through nc instead of ssh).
    printf '#!/bin/sh\nexec busybox nc "$1" 8002\n' > $W/xl-over-tcp
    watch start xl
    T0=$(date +%s.%N)
    xl migrate -s "sh $W/xl-over-tcp" pvh $A_IP > $W/xl.log 2>&1
    xrc=$?
    T1=$(date +%s.%N)
    watch stop xl
    check "xl migrate B → A exits 0" [ $xrc -eq 0 ]
    check "no domain of host B has the shared disk after xl's move" within 30 no_writers
    move_line xl "$(awk -v a=$T0 -v b=$T1 'BEGIN {printf "%.2f", b - a}')" - - - -
    echo "xl done" | timeout 10 busybox nc $A_IP 7997 >/dev/null 2>&1
  fi
  kill $DEST 2>/dev/null; wait $DEST 2>/dev/null
  finish
fi

# Host A. However its job ends, it tells host B (which waits for that) first.
verdict() { echo "$1" | timeout 10 busybox nc $B_IP 7999 >/dev/null 2>&1; }
end_a() { verdict "${1:-not moved}"; finish; }
sed -e "s/^extra = .*/extra = \"console=hvc0 rdinit=\/init memcheck=${MEMCHECK:-8,32,100}\"/" -e 's|^disk = .*|disk = [ "phy:/dev/nbd0,xvda,w" ]|' /root/domu/pvh.cfg > $W/pvh.cfg
xl create $W/pvh.cfg > $W/create.log 2>&1 && within 180 sh -c "grep -q 'memcheck: .* written' /var/log/xen/console/guest-pvh.log" \
  || { fail "guest booted on host A"; tail -5 $W/create.log; end_a; }
pass "PVH guest booted on host A"
check "the guest answers pings across the segment" within 120 busybox ping -c 1 -W 1 $GUEST_IP
check "the guest wrote its data to the shared disk" within 120 sh -c "grep -q 'domU disk: wrote' /var/log/xen/console/guest-pvh.log"
DISK0=$(sed -n 's/.*domU disk: wrote 4 MiB, sha256 \([0-9a-f]*\).*/\1/p' /var/log/xen/console/guest-pvh.log | head -1)
{ certs "$CA_" "$KA"; printf '[hypervisor]\ndriver = "xen"\n[xen]\nsuspend_timeout_s = 60\n[state]\ndirectory = "%s"\n[attestation]\n' $W/source-state
  $B/palm-dest measure --config $W/dest-b.toml; } > $W/source.toml
MEM=$($B/palm-source vms --json --config $W/source.toml | tr -d ' \n' | sed -n 's/.*"memoryBytes":\([0-9]*\),"name":"pvh".*/\1/p')
$B/palm-coordinator ticket issue --key $CADIR/issued/xenrig-coordinator.key --vm pvh --memory "$MEM" \
  --source-cert "$CA_" --dest-cert "$CB" --validity 3600 --out $W/ticket >/dev/null
reachable() { timeout 5 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
check "host B's palm-dest answers across the wire" within 120 reachable $B_IP 7500
# (1) Host B's palm-dest dies mid-transfer (killed there at pre-copy): the guest keeps running on
# host A, and stays the disk's one writer.
SRC=$(domid pvh)
$B/palm-source migrate pvh --to $B_IP:7500 --config $W/source.toml --ticket $W/ticket --json > $W/fault.json 2> $W/source-fault.log
rc=$?
check "palm-source reports the failed move (exit $rc)" [ $rc -ne 0 ]
grep -E "aborted|error" $W/source-fault.log | tail -2
check "the guest still runs on host A under its own domid" [ "$(domid pvh)" = "$SRC" ]
check "the guest is not paused on host A" sh -c "xl list pvh | awk 'NR == 2 {exit (\$5 ~ /p/) ? 1 : 0}'"
check "exactly one domain of host A, pvh, has the shared disk after the failed move" [ "$(writers)" = 1 ]
check "the guest reads its disk data back the same after the failed move" [ -n "$DISK0" -a "$(disksum)" = "$DISK0" ]
# (2) The move, to the restarted palm-dest, under a new ticket (the first one was spent).
$B/palm-coordinator ticket issue --key $CADIR/issued/xenrig-coordinator.key --vm pvh --memory "$MEM" \
  --source-cert "$CA_" --dest-cert "$CB" --validity 3600 --out $W/ticket >/dev/null
check "host B's restarted palm-dest answers" within 120 reachable $B_IP 7500
watch start palm
t palm-start
$B/palm-source migrate pvh --to $B_IP:7500 --config $W/source.toml --ticket $W/ticket --json > $W/palm.json 2> $W/source.log
rc=$?
t palm-end
watch stop palm
check "palm-source migrate to host B exits 0" [ $rc -eq 0 ]
check "the guest is gone from host A" sh -c "! xl list pvh >/dev/null 2>&1 && ! xl list | grep -q -- --migratedaway"
check "no domain of host A has the shared disk attached any more" [ "$(writers)" = 0 ]
check "the guest reads its disk data back the same on host B" [ -n "$DISK0" -a "$(disksum)" = "$DISK0" ]
echo "palm's downtime by phase (s): $(sed -n '/"downtimePhases"/,/}/p' $W/palm.json | grep -v downtimePhases | tr -d ' ",}' | tr '\n' ' ')"
move_line palm "$(awk -v s="$(field totalSeconds)" 'BEGIN {printf "%.2f", s}')" "$(awk -v s="$(field downtimeSeconds)" 'BEGIN {printf "%.1f", s * 1000}')" \
  "$(grep -c '"final"' $W/palm.json)" "$(field bytesOnWire)" "$(field compression)"
[ $rc -eq 0 ] || end_a
printf '#!/bin/sh\nexec xl migrate-receive\n' > $W/xl-receive && chmod 0755 $W/xl-receive
busybox nc -l -p 8002 -e $W/xl-receive > $W/xl-receive.log 2>&1 &
verdict moved
timeout 900 busybox nc -l -p 7997 < /dev/null > $W/xl-done
check "xl brought the guest back to host A" within 60 sh -c "xl list pvh 2>/dev/null | awk 'NR == 2 {exit (\$5 ~ /[rb]/) ? 0 : 1}'"
check "exactly one domain of host A, pvh, has the shared disk after xl's move back" [ "$(writers)" = 1 ]
check "the guest reads its disk data back the same after xl's move back" [ -n "$DISK0" -a "$(disksum)" = "$DISK0" ]
finish
