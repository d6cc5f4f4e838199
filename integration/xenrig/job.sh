#!/bin/bash
# Runs inside the rig's dom0 (integration/xenrig/run.sh puts it on the 9p share as run.sh):
# a 128 MiB PVH guest running memcheck, with a vif on dom0's bridge and a loop-backed disk, is
# (1) sent by palm-source to a palm-dest that is killed mid-transfer — it must keep running on the
# source; (2) live-migrated by palm-source → palm-dest over mTLS with a ticket and attestation —
# ≥ 2 pre-copy rounds, the guest keeps running, its memory check passes, the source domain is
# gone, dom0's TCP connection to it survives, its disk data reads back the same — the destination
# attested by the host's TPM (a quote of dom0's IMA log, and of its boot log where the firmware
# hands one over), its TLS key in that TPM; (3) migrated by
# `xl migrate` in the same boot. Downtime of (2) and (3) is measured the same ways, from dom0: the
# domains' states (tools/xenwatch.c) and the network — the longest gap in replies to a ping every
# 10 ms, and the echoes on a TCP connection held across the move (tools/netwatch.c). (4) moved by
# an operator through palm-coordinator; (5) a second guest's life after palm moved it: palm-dest
# restarts it when it reboots (also after palm-dest itself restarted) and removes it when it
# powers off, as its configuration says.
# (integration/xenrig/job-lib.sh, which run.sh puts before this file, has the helpers.)
t start
xl info | grep -E "^(xen_version|total_memory|free_memory)"
# The host's TPM (QEMU's tpm-tis on swtpm, run.sh) and IMA: from here on the kernel measures every
# executable and library dom0 maps (Debian's kernel has the TPM driver and IMA built in; the
# policy is written at run time, as integration/systemd does), so the policy learned before (2)
# allows what this job runs.
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
check "dom0 reaches the host's TPM through the kernel's resource manager (/dev/tpmrm0)" test -c /dev/tpmrm0
check "IMA measures what dom0 runs from now on" sh -c "printf 'measure func=BPRM_CHECK\nmeasure func=MMAP_CHECK mask=MAY_EXEC\n' > /sys/kernel/security/ima/policy"
BOOTLOG=/sys/kernel/security/tpm0/binary_bios_measurements
sed "s/^extra = .*/extra = \"console=hvc0 rdinit=\/init memcheck=${MEMCHECK:-8,32,100}\"/" /root/domu/pvh.cfg > $W/pvh.cfg
# The guest's network and disk: a bridge in dom0 (10.99.0.1/24) and a raw image on a loop device.
{ ip link add xenbr0 type bridge && ip addr add 10.99.0.1/24 dev xenbr0 && ip link set xenbr0 up; } || { fail "dom0 bridge xenbr0"; finish; }
{ truncate -s 16M /dev/shm/pvh-disk.img && losetup /dev/loop7 /dev/shm/pvh-disk.img; } || { fail "loop device for the guest's disk"; finish; }
GUEST_IP=10.99.0.2
# Under TCG the guest's own boot sometimes triple-faults: such a boot is thrown away and retried
# (at most three times); later on, a guest fault fails the check that sees it.
booted=""
for attempt in 1 2 3; do
  xl destroy pvh >/dev/null 2>&1; rm -f /var/log/xen/console/guest-pvh.log
  timeout 300 xl -vv create $W/pvh.cfg > $W/create.log 2>&1 || { fail "xl create"; tail -30 $W/create.log; grep -v "^++++ [A-Z_]*=" /var/log/xen/xen-hotplug.log | head -120; xl dmesg | tail -20; finish; }
  # Wait until memcheck runs, or the domain is shut down / crashed (s or c in xl's State column).
  within 180 sh -c 'grep -q "memcheck: .* written" /var/log/xen/console/guest-pvh.log 2>/dev/null || xl list pvh | awk "NR == 2 {exit (\$5 ~ /[sc]/) ? 0 : 1}"' 
  grep -q "memcheck: .* written" /var/log/xen/console/guest-pvh.log 2>/dev/null && { booted=$attempt; break; }
  echo "guest boot attempt $attempt failed: $(xl list pvh 2>/dev/null | tail -1)"
done
[ -n "$booted" ] || { fail "guest booted with memcheck"; finish; }
pass "PVH guest booted, memcheck running ($(grep -m1 'memcheck:' /var/log/xen/console/guest-pvh.log))"
t guest-up
check "the guest wrote its disk data ($(consoles | grep -m1 'domU disk:' | cut -c1-60)…)" within 120 sh -c "grep -q 'domU disk: wrote' /var/log/xen/console/guest-pvh.log"
DISK0=$(consoles | sed -n 's/.*domU disk: wrote 4 MiB, sha256 \([0-9a-f]*\).*/\1/p' | head -1)
check "the guest answers pings on dom0's bridge" within 120 busybox ping -c 1 -W 1 $GUEST_IP
disksum() { timeout 60 busybox nc $GUEST_IP 7001 </dev/null 2>/dev/null | tr -d ' \n'; }
# netwatch_start NAME / netwatch_stop NAME: the network's view of one migration, in $W/NAME.net.
netwatch_start() {
  $B/netwatch $GUEST_IP 7000 > $W/$1.net 2>&1 &
  NETWATCH=$!
  within 90 grep -q "netwatch: ready" $W/$1.net || fail "netwatch reaches the guest before $1 ($(cat $W/$1.net))"
}
netwatch_stop() { kill -TERM $NETWATCH 2>/dev/null; wait $NETWATCH 2>/dev/null; cat $W/$1.net; }
net() { sed -n "s/.*\b$2=\([a-z0-9.]*\).*/\1/p" $W/$1.net | tail -1; }

# Configuration: one dom0 is both hosts (the rig's certificates are for 127.0.0.1).
CA=$CADIR/ca.pem C=$CADIR/issued/xenrig.pem K=$CADIR/issued/xenrig.key
CC=$CADIR/issued/xenrig-coordinator.pem
certs() { printf '[tls]\ncertificate = "%s"\nkey = "%s"\nca = "%s"\n' "$1" "$2" "$CA"; }   # CERT KEY
tls() { certs "${1:-$C}" "${2:-$K}"; printf '[hypervisor]\ndriver = "xen"\n[xen]\nsuspend_timeout_s = 60\n'; }   # [CERT KEY]
dest_config() {  # STATE_DIR [CERT KEY]: a palm-dest on the Xen driver, any free port, the rig's coordinator
  tls "${@:2}"; printf '[listen]\naddress = "127.0.0.1"\nport = 0\n[security]\ncoordinator_certificate = "%s"\n[state]\ndirectory = "%s"\n' "$CC" "$1"
}
dest_config "$W/dest-state" > $W/dest.toml
{ tls; printf '[state]\ndirectory = "%s"\n[attestation]\n' "$W/source-state"; $B/palm-dest measure --config $W/dest.toml; } > $W/source.toml \
  || { fail "palm-dest measure (xen driver in dom0)"; finish; }
grep -A3 '^\[attestation\]' $W/source.toml
# The emulated dom0 has corrupted computations before (a heap, a SHA-256): palm's own measurement
# must agree with coreutils', or the run says so here rather than as an attestation mismatch.
check "palm-dest's self-measurement agrees with sha256sum" grep -q "$(sha256sum $B/palm-dest | cut -c1-64)" $W/source.toml
$B/palm-source vms --config $W/source.toml
MEM=$($B/palm-source vms --json --config $W/source.toml | tr -d ' \n' | sed -n 's/.*"memoryBytes":\([0-9]*\),"name":"pvh".*/\1/p')
[ -n "$MEM" ] || { fail "palm-source vms lists pvh"; finish; }
pass "palm-source vms lists pvh ($MEM bytes)"

unmonitor() { kill $MONITOR 2>/dev/null; wait $MONITOR 2>/dev/null; }
# Every 20 s while a migration runs: the guest's domains (a fault shows as a state change or a
# vanished domid) and the destination's last word (palm-source --json logs only warnings).
monitor() {
  while sleep 20; do
    t "monitor: load $(cut -d' ' -f1-4 /proc/loadavg) $(timeout 10 xl list | awk 'NR > 1 && $1 ~ /^pvh/ {printf "%s d%s %s; ", $1, $2, $5}')alive=$(count 'domU alive') dest: $(tail -n 1 $W/dest.log | cut -c26-150)"
  done & MONITOR=$!
}
# The watcher has seen the hand-off within milliseconds of a migration's end, or never will.
settle_watch() { within 15 sh -c "! kill -0 $WATCH 2>/dev/null"; kill $WATCH 2>/dev/null; wait $WATCH 2>/dev/null; }
# The agents run with exactly the user, capability bounding set, NoNewPrivileges and device
# access their units in deploy/ grant (as-unit.sh reads them from the unit files).
# (A simple command, not a function, so that $! is the agent's pid: as-unit.sh execs into it.)
UNITS=/root/palm/units AS_DEST="$B/as-unit.sh /root/palm/units/palm-dest.service" AS_SOURCE="$B/as-unit.sh /root/palm/units/palm-source.service"
start_dest() {  # LOG_NAME [CONFIG]: sets DEST and PORT; env passed through
  $AS_DEST $B/palm-dest serve --config "${2:-$W/dest.toml}" > $W/$1.out 2> $W/$1.log &
  DEST=$!
  within 60 grep -q listening $W/$1.out || { fail "palm-dest listening"; cat $W/$1.log; finish; }
  PORT=$(awk -F: '/listening/ {print $NF}' $W/$1.out)
}
ticket() {  # [DEST_CERT [VM MEMORY]]
  $B/palm-coordinator ticket issue --key $CADIR/issued/xenrig-coordinator.key --vm "${2:-pvh}" --memory "${3:-$MEM}" \
    --source-cert "$C" --dest-cert "${1:-$C}" --validity 3600 --out $W/ticket >/dev/null
}

# (1) The destination dies mid-transfer: the guest must keep running on the source.
t fault-start
SRC1=$(domid pvh)
PALM_TEST_STOP_AT=precopy start_dest dest-fault
ticket
$AS_SOURCE $B/palm-source migrate pvh --to 127.0.0.1:$PORT --config $W/source.toml --ticket $W/ticket --json > $W/fault.json 2> $W/source-fault.log &
MIG=$!
within 300 sh -c "grep -q 'stopping at fault point precopy' $W/dest-fault.log || ! kill -0 $MIG 2>/dev/null"
if grep -q "stopping at fault point precopy" $W/dest-fault.log; then
  kill -9 $DEST; wait $DEST 2>/dev/null
  wait $MIG; rc=$?
  check "palm-source reports the failed migration (exit $rc)" [ $rc -ne 0 ]
else
  fail "palm-dest reached the pre-copy fault point"; kill $MIG 2>/dev/null; wait $MIG 2>/dev/null
fi
cat $W/source-fault.log | grep -E "error|aborted|resumed" | tail -3
check "guest still runs on the source under its own domid" [ "$(domid pvh)" = "$SRC1" ]
check "the source domain is not paused" sh -c "xl list pvh | awk 'NR == 2 {exit (\$5 ~ /p/) ? 1 : 0}'"
A0=$(count "domU alive")
check "guest console keeps printing on the source" within 60 sh -c "[ \$(cat /var/log/xen/console/guest-pvh*.log | grep -c 'domU alive') -ge $((A0 + 2)) ]"
echo "after the kill: $(xl list | awk 'NR > 1 && /--incoming/ {print $1}' | tr "\n" " ")(half-built, until palm-dest restarts)"
# The kill lands before or after libxl's xenstore transaction names the domain it has just created
# (both happen: a killed palm-dest left a nameless "(null)" domain for good until its recovery
# looked for marks as well as names). Whenever nothing was populated yet, the harder case is made
# every time: what that transaction writes is removed, so the domain exists and xenstore does not
# know it.
HALF=$(xl list | awk 'NR > 1 && ($1 == "pvh--incoming" || $1 == "(null)") {print $2}' | head -1)
if [ -n "$HALF" ] && [ "$(xl list | awk -v d="$HALF" 'NR > 1 && $2 == d {print $3}')" = 0 ]; then
  xenstore-rm /local/domain/$HALF 2>/dev/null; xenstore-rm /libxl/$HALF 2>/dev/null
  echo "the half-built domain $HALF has no pages yet: its xenstore entries removed, as if the kill came before libxl named it"
fi
t fault-end

# (2) palm: live migration over mTLS with ticket and attestation by the host's TPM.
# The destination's TLS key is its TPM's: the TPM signs a request, dom0's CA issues from it. Its
# quote covers IMA's PCR 10, and the boot PCRs 0-9 when the firmware's event log reaches dom0.
TC=$CADIR/issued/xenrig-tpm.pem
if [ -s $BOOTLOG ]; then PCRS="[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"; else PCRS="[10]"; fi
echo "boot event log in dom0: $( [ -s $BOOTLOG ] && echo "$(stat -c %s $BOOTLOG 2>/dev/null || wc -c < $BOOTLOG) bytes" || echo "none (quoting PCR 10 only)")"
{ dest_config "$W/dest-state" "$TC" tpm; printf '[attestation]\nmode = "tpm"\ntpm = "device:/dev/tpmrm0"\npcrs = %s\n' "$PCRS"; } > $W/dest-tpm.toml
$B/palm-dest tls-key --config $W/dest-tpm.toml --csr $W/xenrig-tpm.csr --name xenrig-tpm > $W/tls-key.log 2>&1 \
  && $B/palm-ca --dir $CADIR host xenrig-tpm --csr $W/xenrig-tpm.csr --ip 127.0.0.1 >> $W/tls-key.log 2>&1
check "a certificate for the TLS key in dom0's TPM (palm-dest tls-key --csr, palm-ca host --csr)" \
  sh -c "$B/palm-dest tls-key --config $W/dest-tpm.toml | grep -q 'a certificate for this key'"
grep -v "^palm-ca: issued" $W/tls-key.log | head -6
# palm-dest builds the incoming domain with libxl in its own process, so the kill -9 above left
# pvh--incoming half-built; restarted (as its unit's Restart= does), its recovery destroys it.
start_dest dest $W/dest-tpm.toml
check "palm-dest runs with its unit's capability bounding set ($DEST_UNIT_CAPBND), no new privileges" \
  sh -c "grep -q 'CapBnd:.*$DEST_UNIT_CAPBND' /proc/$DEST/status && grep -q 'CapEff:.*$DEST_UNIT_CAPBND' /proc/$DEST/status && grep -q 'NoNewPrivs:.*1' /proc/$DEST/status"
check "palm-dest sees only the devices its unit allows ($(ls /proc/$DEST/root/dev/xen 2>/dev/null | tr '\n' ' '))" \
  sh -c "[ \"\$(ls /proc/$DEST/root/dev/xen | sort | tr '\n' ' ')\" = \"\$(sed -n 's|^DeviceAllow=/dev/xen/\([^ ]*\) .*|\1|p' $UNITS/palm-dest.service | sort | while read d; do [ -e /dev/xen/\$d ] && echo \$d; done | tr '\n' ' ')\" ]"
check "palm-dest restarted destroys the half-built incoming domain the killed one left, named or not${HALF:+ (domain $HALF)}" \
  within 60 sh -c "! xl list | awk 'NR > 1 && \$2 != 0 && \$2 != $SRC1' | grep -q ."
ticket $TC
S0=$(sweeps); F0=$(count "memcheck: FAIL"); A0=$(count "domU alive")
netwatch_start palm
$B/xenwatch pvh 900 > $W/palm.watch &
WATCH=$!
# The source requires the TPM: the destination's enrolled attestation key and a platform policy
# learned from dom0 now — declared good after everything this job runs has run once.
{ tls; printf '[state]\ndirectory = "%s"\n[attestation]\n' "$W/source-state"
  $B/palm-dest measure --config $W/dest-tpm.toml --platform-policy $W/platform-policy.json; } > $W/source-tpm.toml \
  || { fail "palm-dest measure --platform-policy"; cat $W/source-tpm.toml; finish; }
grep -E "^(require|platform_policy)" $W/source-tpm.toml
t palm-start
T0=$(date +%s.%N)
AS_UNIT_STAMP=$W/palm.exec $AS_SOURCE $B/palm-source migrate pvh --to 127.0.0.1:$PORT --config $W/source-tpm.toml --ticket $W/ticket --json > $W/palm.json 2> $W/source.log &
MIG=$!
monitor
wait $MIG; rc=$?
unmonitor
T1=$(date +%s.%N)
t palm-end
settle_watch
netwatch_stop palm
check "palm-source migrate exits 0" [ $rc -eq 0 ]
check "the destination attested by the host's TPM, its TLS key in the TPM (the report)" \
  sh -c "grep -q '\"destinationAttestation\" *: *\"tpm\"' $W/palm.json && grep -q '\"destinationTLSKey\" *: *\"tpm\"' $W/palm.json"
check "dom0's TCP connection to the guest survives palm's move (every byte echoed)" [ "$(net palm tcp)" = alive ]
check "the guest's disk data reads back the same after palm's move" [ -n "$DISK0" -a "$(disksum)" = "$DISK0" ]
cat $W/palm.json
PRE=$(grep -o '"final" *: *false' $W/palm.json | wc -l)
check "at least two pre-copy rounds ($PRE)" [ "$PRE" -ge 2 ]
# The destination renames pvh--incoming to pvh just after it answered DONE.
within 30 sh -c 'xl domid pvh >/dev/null 2>&1'
NEW=$(domid pvh)
check "pvh runs under a new domid ($SRC1 → ${NEW:-none})" [ -n "$NEW" -a "$NEW" != "$SRC1" ]
check "the source domain is gone" sh -c "! xl list | grep -q -- '--migratedaway' && ! xl list $SRC1 >/dev/null 2>&1"
check "exactly one guest domain, pvh — none other, named or not — and no palm build left marked in xenstore" within 30 only_pvh
check "guest console continues after the move" within 90 sh -c "[ \$(cat /var/log/xen/console/guest-pvh*.log | grep -c 'domU alive') -ge $((A0 + 2)) ]"
check "memcheck completes a full sweep after the move (every page checked)" within 240 sh -c "[ \"\$(cat /var/log/xen/console/guest-pvh*.log | sed -n 's/.*, \([0-9]*\) full sweeps.*/\1/p' | sort -n | tail -1)\" -gt ${S0:-0} ]"
check "memcheck reports no corrupted page" [ "$(count 'memcheck: FAIL')" = "$F0" ]
# palm's total runs from its agent's exec (as xl's from xl's): as-unit.sh's sandbox set-up before
# it is systemd's work on a real host and is printed apart.
EXEC=$(cat $W/palm.exec 2>/dev/null || echo $T0)
SANDBOX=$(awk -v a=$T0 -v b=$EXEC 'BEGIN {printf "%.2f", b - a}')
PALM_TOTAL=$(awk -v a=$EXEC -v b=$T1 'BEGIN {printf "%.2f", b - a}')
PALM_DOWN=$(sed -n 's/downtime_ms=\([0-9.]*\).*/\1/p' $W/palm.watch)
kill $DEST 2>/dev/null; wait $DEST 2>/dev/null

# (3) The same guest, same boot: xl migrate to localhost.
S0=$(sweeps); A0=$(count "domU alive")
netwatch_start xl
$B/xenwatch pvh 900 > $W/xl.watch &
WATCH=$!
t xl-start
T0=$(date +%s.%N)
xl migrate -s "" pvh "xl migrate-receive" > $W/xl.log 2>&1
rc=$?
T1=$(date +%s.%N)
t xl-end
settle_watch
netwatch_stop xl
check "xl migrate exits 0" [ $rc -eq 0 ]
check "the guest's disk data reads back the same after xl's move" [ -n "$DISK0" -a "$(disksum)" = "$DISK0" ]
tail -3 $W/xl.log
check "guest console continues after xl migrate" within 90 sh -c "[ \$(cat /var/log/xen/console/guest-pvh*.log | grep -c 'domU alive') -ge $((A0 + 2)) ]"
XL_TOTAL=$(awk -v a=$T0 -v b=$T1 'BEGIN {printf "%.2f", b - a}')
XL_DOWN=$(sed -n 's/downtime_ms=\([0-9.]*\).*/\1/p' $W/xl.watch)

# (4) The operator's path: palm-coordinator in dom0 with both hosts' agents; the operator asks
# `palm-coordinator migrate pvh --to xenrig-b --wait`. One dom0 plays both hosts: host A
# ("xenrig": palm-source serve, Xen driver) reports the guest; host B ("xenrig-b") receives with
# palm-dest serve on the same Xen, and its heartbeat agent uses the sim driver, so the one Xen's
# domains are reported once (by A — which therefore still lists pvh after the move).
t operator-start
CB=$CADIR/issued/xenrig-b.pem KB=$CADIR/issued/xenrig-b.key
dest_config "$W/dest-b-state" "$CB" "$KB" > $W/dest-b.toml
start_dest dest-b $W/dest-b.toml
DESTB=$DEST PORTB=$PORT
{ certs "$CC" "$CADIR/issued/xenrig-coordinator.key"
  printf '[listen]\naddress = "127.0.0.1"\nport = 7400\n[state]\ndatabase = "%s"\n[access]\npolicy = "/root/palm/policy.toml"\n' "$W/coordinator.sqlite"
  printf '[agents]\nheartbeat_interval_s = 1\n[scheduler]\ninterval_s = 1\nauto_balance = false\n[attestation]\n'
  $B/palm-dest measure --config $W/dest-b.toml; } > $W/coordinator.toml
$B/palm-coordinator serve --config $W/coordinator.toml > $W/coordinator.out 2> $W/coordinator.log &
COORD=$!
within 60 grep -q listening $W/coordinator.out || { fail "palm-coordinator listening"; cat $W/coordinator.log; finish; }
link() { printf '[coordinator]\naddress = "127.0.0.1:7400"\ncertificate = "%s"\nadvertise = "127.0.0.1:%s"\n' "$CC" "$1"; }
{ tls; printf '[state]\ndirectory = "%s"\n' "$W/source-a-state"; link 7401; } > $W/source-a.toml
{ certs "$CB" "$KB"; printf '[hypervisor]\ndriver = "sim"\n[sim]\nroot = "/dev/shm/palm-b-sim"\n'
  printf '[state]\ndirectory = "%s"\n' "$W/source-b-state"; link $PORTB; } > $W/source-b.toml
$AS_SOURCE $B/palm-source serve --config $W/source-a.toml 2> $W/source-a.log &
SRCA=$!
$B/palm-source serve --config $W/source-b.toml 2> $W/source-b.log &
SRCB=$!
export PALM_SERVER=127.0.0.1:7400 PALM_CERT=$CADIR/issued/ops.pem PALM_KEY=$CADIR/issued/ops.key PALM_CA=$CA
check "the coordinator sees both hosts up and pvh on host A" within 120 sh -c "$B/palm-coordinator vms 2>/dev/null | grep -w pvh | grep -qv xenrig-b && [ \$($B/palm-coordinator hosts 2>/dev/null | grep -cw up) -ge 2 ]"
$B/palm-coordinator hosts; $B/palm-coordinator vms
BEFORE=$(domid pvh); F0=$(count "memcheck: FAIL"); A0=$(count "domU alive")
netwatch_start operator
check "palm-coordinator migrate pvh --to xenrig-b --wait exits 0" timeout 900 $B/palm-coordinator migrate pvh --to xenrig-b --wait
netwatch_stop operator
$B/palm-coordinator history
check "the coordinator recorded the migration committed" sh -c "$B/palm-coordinator history | grep 'pvh' | grep -q committed"
check "pvh runs under a new domid ($BEFORE → $(domid pvh))" sh -c "[ -n \"\$(xl domid pvh 2>/dev/null)\" ] && [ \"\$(xl domid pvh)\" != $BEFORE ]"
check "exactly one guest domain, pvh, and no palm build left marked after the operator's move" within 30 only_pvh
check "guest console continues after the operator's move" within 90 sh -c "[ \$(cat /var/log/xen/console/guest-pvh*.log | grep -c 'domU alive') -ge $((A0 + 2)) ]"
check "dom0's TCP connection survives the operator's move" [ "$(net operator tcp)" = alive ]
check "memcheck reports no corrupted page after the operator's move" [ "$(count 'memcheck: FAIL')" = "$F0" ]
check "the audit log verifies" $B/palm-coordinator audit verify --db $W/coordinator.sqlite --coordinator-cert $CC
kill $SRCA $SRCB $DESTB $COORD 2>/dev/null; wait $SRCA $SRCB $DESTB $COORD 2>/dev/null
t operator-end

# (5) The guest's life after the move: palm-dest keeps it as xl's per-domain process would. A second
# guest, "life", configured on_reboot = "restart" and on_poweroff = "destroy" (pvh preserves on
# reboot: a triple fault must show), is created by xl and moved by palm; then it reboots (xl reboot
# asks its kernel) and must come back under a new domid; palm-dest is restarted and a second
# reboot must still come back; then it powers off and must be gone.
t life-start
LIFELOG=/var/log/xen/console/guest-life.log
sed -e 's/^name = .*/name = "life"/' -e 's/^on_reboot = .*/on_reboot = "restart"/' \
    -e 's/^extra = .*/extra = "console=hvc0 rdinit=\/init memcheck=4,8,200"/' -e '/^vif = /d' -e '/^disk = /d' /root/domu/pvh.cfg > $W/life.cfg
echo 'on_poweroff = "destroy"' >> $W/life.cfg
ups() { grep -c "domU up" $LIFELOG 2>/dev/null; }
xl create $W/life.cfg > $W/life-create.log 2>&1 && within 120 sh -c "grep -q 'domU alive' $LIFELOG" \
  || { fail "guest life booted"; tail -5 $W/life-create.log; tail -5 $LIFELOG; finish; }
start_dest life
LMEM=$($B/palm-source vms --json --config $W/source.toml | tr -d ' \n' | sed -n 's/.*"memoryBytes":\([0-9]*\),"name":"life".*/\1/p')
ticket "$C" life "$LMEM"
L0=$(domid life)
$AS_SOURCE $B/palm-source migrate life --to 127.0.0.1:$PORT --config $W/source.toml --ticket $W/ticket > $W/life-migrate.log 2>&1
check "palm moves life (created by xl) to palm-dest" [ $? -eq 0 ]
within 30 sh -c 'xl domid life >/dev/null 2>&1'
L1=$(domid life); U1=$(ups)
xl reboot life >/dev/null 2>&1
check "life reboots itself after the move and palm-dest starts it again (on_reboot = restart), under a new domid" \
  within 120 sh -c "[ -n \"\$(xl domid life 2>/dev/null)\" ] && [ \"\$(xl domid life)\" != $L1 ] && [ \$(grep -c 'domU up' $LIFELOG) -gt $U1 ]"
grep "vm.lifecycle\|life (domain" $W/life.log | tail -2
kill $DEST 2>/dev/null; wait $DEST 2>/dev/null
start_dest life2
check "palm-dest restarted finds the domain it keeps" grep -q "keeping the life of .*\blife\b" $W/life2.log
L2=$(domid life); U2=$(ups)
xl reboot life >/dev/null 2>&1
check "a second reboot, after palm-dest's restart, still comes back (domain $L2 → new)" \
  within 120 sh -c "[ -n \"\$(xl domid life 2>/dev/null)\" ] && [ \"\$(xl domid life)\" != $L2 ] && [ \$(grep -c 'domU up' $LIFELOG) -gt $U2 ] && grep -q 'started again' $W/life2.log"
within 120 sh -c "grep -q 'domU alive' $LIFELOG && [ \$(grep -c 'domU up' $LIFELOG) -gt $U2 ]"
xl shutdown life >/dev/null 2>&1
check "life powers itself off and is gone from the domain list (on_poweroff = destroy)" \
  within 120 sh -c "! xl domid life >/dev/null 2>&1 && grep -q 'stopped (poweroff): on_poweroff = destroy: destroyed' $W/life2.log"
grep "life (domain" $W/life2.log | tail -3
kill $DEST 2>/dev/null; wait $DEST 2>/dev/null
t life-end

{
  echo "== 128 MiB PVH guest (memcheck ${MEMCHECK:-8,32,100}), localhost in one dom0, Xen under QEMU TCG =="
  printf '%-28s %9s %12s %16s %15s\n' "" "total s" "downtime ms" "network gap ms" "TCP connection"
  printf '%-28s %9s %12s %16s %15s\n' "palm (mTLS, ticket, attest.)" "$PALM_TOTAL" "${PALM_DOWN:-?}" "$(net palm ping_gap_ms)" "$(net palm tcp)"
  printf '%-28s %9s %12s %16s %15s\n' "xl migrate (plain)" "$XL_TOTAL" "${XL_DOWN:-?}" "$(net xl ping_gap_ms)" "$(net xl tcp)"
  awk -v pt="$PALM_TOTAL" -v xt="$XL_TOTAL" -v pd="${PALM_DOWN:-0}" -v xd="${XL_DOWN:-0}" -v pn="$(net palm ping_gap_ms)" -v xn="$(net xl ping_gap_ms)" 'BEGIN {
    printf "ratio palm / xl: total %.2f, downtime %s, network gap %s\n", pt / xt, (xd > 0 && pd > 0) ? sprintf("%.2f", pd / xd) : "?",
      (xn > 0 && pn > 0) ? sprintf("%.2f", pn / xn) : "?" }'
  echo "(total: from the migrating process's start — palm-source's exec, after as-unit.sh's shell emulation of its unit's sandbox, $SANDBOX s here, which systemd builds natively — to its exit)"
  echo "(downtime: xenwatch, domain states read at each domain shutdown xenstored reports and every 1 ms while the guest is down; network gap: the longest time between two replies to a ping every 10 ms from dom0)"
  echo "palm's downtime as palm-source measured it, by phase (s):" $(sed -n '/"downtimePhases"/,/}/p' $W/palm.json | grep -v downtimePhases | tr -d ' ",}')
  field() { sed -n "s/^ *\"$1\" : \([0-9.e-]*\).*/\1/p" $W/palm.json | head -1; }
  if [ -n "$(field preparationSeconds)" ]; then
    awk -v all="$PALM_TOTAL" -v p="$(field preparationSeconds)" -v s="$(field totalSeconds)" -v c="$(field cleanupSeconds)" 'BEGIN {
      printf "palm'"'"'s total by part (s): preparing (ticket, hypervisor, the VM opened while connecting) %.2f, session (HELLO to DONE) %.2f, destroying the source'"'"'s copy %.2f, the process'"'"'s start and exit %.2f\n",
        p, s, c, all - p - s - c }'
  fi
} | tee $W/results
finish
