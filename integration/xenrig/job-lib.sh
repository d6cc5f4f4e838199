# The helpers every Xen rig job starts with (run.sh and two-hosts.sh put this file before the job):
# checks that count, bounded waits, the guest's console, and finish — which prints what went wrong
# and copies the job's logs to the share.
set -u
# palm's binaries, xenwatch and the certificates came in the dom0 initramfs (run.sh).
H=/mnt/host B=/usr/local/bin W=/tmp/palm CADIR=/root/palm/ca
mkdir -p $W
# A shell on dom0's console, for integration/xenrig/xen-keys.sh --dom0 while a job hangs.
setsid sh -c 'exec sh </dev/hvc0 >/dev/hvc0 2>&1' &
PASSED=0 FAILED=0
t() { echo "XENRIG-T $(cut -d' ' -f1 /proc/uptime) $*"; }
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
# Polls a condition every 0.5 s for at most $1 seconds (by the clock: under TCG, starting a
# process takes long enough that counting iterations would not bound the wait).
within() { local end=$(( $(date +%s) + $1 )); shift; until "$@"; do [ "$(date +%s)" -ge $end ] && return 1; sleep 0.5; done; }
consoles() { cat /var/log/xen/console/guest-pvh*.log 2>/dev/null; }
count() { consoles | grep -c "$1"; }
sweeps() { consoles | sed -n 's/.*memcheck: ok, [0-9]* pages checked, \([0-9]*\) full sweeps.*/\1/p' | sort -n | tail -1; }
domid() { xl domid "$1" 2>/dev/null; }
# Exactly one guest domain — pvh — and nothing else, named or not ("(null)"); no palm-dest build
# left marked in xenstore (XenIncomingMarks).
only_pvh() { [ "$(xl list | awk 'NR > 1 && $2 != 0' | wc -l)" = 1 ] && [ -n "$(domid pvh)" ] && [ -z "$(xenstore-list /tool/palm/incoming 2>/dev/null)" ]; }
running_state() { xl list "$1" 2>/dev/null | awk 'NR == 2 {print $5}'; }
finish() {
  echo; echo "== palm.log (source) =="; cat $W/source*.log 2>/dev/null | tail -40
  echo "== palm-dest =="; cat $W/dest*.log 2>/dev/null | tail -40
  echo "== xl list =="; xl list
  echo "== guest console (last lines) =="; consoles | tail -12
  echo "== xl dmesg (last lines) =="; xl dmesg | tail -15
  if consoles | grep -q "Kernel panic\|BUG: " || xl dmesg | grep -q "Triple fault"; then
    echo "NOTE: the guest itself faulted (kernel panic or triple fault, above). Under QEMU TCG this has"
    echo "been the emulation: guest state with Xen's own CS:RIP after a VM exit, a per-CPU GS fault loop."
    consoles | grep -m1 -A3 "BUG: \|Kernel panic"; xl dmesg | grep -m1 -A6 "Triple fault"
  fi
  echo; echo "checks: $PASSED passed, $FAILED failed"
  [ -f $W/results ] && cat $W/results > $H/results.txt
  for f in $W/*.log; do tail -n 300 "$f" > "$H/$(basename "$f").tail"; done
  [ $FAILED -eq 0 ] && [ $PASSED -gt 0 ]
  exit $?
}

