#!/bin/bash
# Runs inside the test VM, under real systemd (PID 1) and journald, from the host's 9p share:
# installs palm with scripts/install.sh, starts the three units for host A (+ host B's agents as
# transient units), and checks what systemd and journald saw. Host A has the VM's TPM and the
# kernel measures with IMA: host A is enrolled through its palm-source, attested by the
# coordinator, a sim VM migrates B → A attested by A's TPM quote and the kernel's real logs, and
# palm-dest restarted with a preloaded library is refused before the first page, the refusal
# naming the library. Prints PASS/FAIL per check and "RESULT: …"; exits non-zero on any failure.
set -u
S=/mnt/host
PASS=0 FAIL=0
check() { local name=$1; shift; if "$@" >/dev/null 2>&1; then echo "PASS $name"; PASS=$((PASS + 1)); else echo "FAIL $name"; FAIL=$((FAIL + 1)); return 1; fi; }
step() { echo; echo "== $*"; }
W=/root/work; mkdir -p "$W"
# Waits up to $1 seconds for a command to succeed.
within() { local t=$1; shift; for _ in $(seq $((t * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done; return 1; }

step "the VM's TPM and the kernel's IMA"
# Debian's kernel has IMA and a TPM driver built in; its policy is written once, at run time (the
# built-in tcb policy skips the initramfs root): every executable run and every library mapped
# executable from now on is measured into PCR 10.
printf 'measure func=BPRM_CHECK\nmeasure func=MMAP_CHECK mask=MAY_EXEC\n' > /sys/kernel/security/ima/policy
IMA=/sys/kernel/security/ima/ascii_runtime_measurements
check "a TPM 2.0 behind the kernel's resource manager (/dev/tpmrm0)" test -c /dev/tpmrm0
# (securityfs files report no size: read one.)
check "measured boot: the firmware's event log" sh -c '[ "$(head -c 64 /sys/kernel/security/tpm0/binary_bios_measurements | wc -c)" = 64 ]'
check "IMA measures what runs (boot_aggregate, then executables)" sh -c "grep -q boot_aggregate $IMA && [ \$(wc -l < $IMA) -gt 3 ]"

step "install with scripts/install.sh"
"$S/repo/scripts/install.sh" --bin-dir "$S/bin" || { echo "FAIL install"; exit 1; }
echo "systemd $(systemctl --version | head -1 | cut -d' ' -f2), PID 1: $(cat /proc/1/comm)"
check "every installed binary finds each of its shared libraries" sh -c '! ldd /usr/local/bin/palm-* | grep -q "not found"'
check "palm-simguest loads no Xen library" sh -c '! ldd /usr/local/bin/palm-simguest | grep -q libxen'
check "man pages installed" sh -c 'for p in palm-coordinator palm-source palm-dest; do grep -q "^.Dt" /usr/local/share/man/man1/$p.1 || exit 1; done'
check "bash, zsh and fish completions installed" sh -c 'grep -q evacuate /usr/local/share/bash-completion/completions/palm-coordinator && test -s /usr/local/share/zsh/site-functions/_palm-source && test -s /usr/local/share/fish/vendor_completions.d/palm-dest.fish'

step "certificates and configuration"
CA="$S/repo/certs/palm-ca --dir $W/ca"
$CA init >/dev/null 2>&1
$CA host host-b --ip 127.0.0.1 >/dev/null 2>&1   # host A's key is in its TPM: its certificate comes below
$CA host coordinator --role coordinator --ip 127.0.0.1 >/dev/null 2>&1
$CA operator ops --role operator >/dev/null 2>&1
$CA operator admin --role admin >/dev/null 2>&1
I=$W/ca/issued
install -m 0644 "$W/ca/ca.pem" /etc/palm/tls/ca.pem
install -m 0644 "$I/coordinator.pem" /etc/palm/tls/coordinator.pem; install -m 0640 "$I/coordinator.key" /etc/palm/tls/coordinator.key
chgrp palm /etc/palm/tls/coordinator.key
mkdir -p /etc/palm-b; install -m 0600 "$I/host-b.pem" "$I/host-b.key" /etc/palm-b/
# The VM's TPM manufacturer (swtpm's local CA, made by run.sh): the EK certificates the coordinator trusts.
install -m 0644 "$S/tpm/ca/swtpm-localca-rootca-cert.pem" /etc/palm/tls/tpm-vendor-root.pem
install -m 0644 "$S/tpm/ca/issuercert.pem" /etc/palm/tls/tpm-vendor-issuer.pem

tls() { printf '[tls]\ncertificate = "%s"\nkey = "%s"\nca = "/etc/palm/tls/ca.pem"\n' "$1" "$2"; }
sim() { printf '[hypervisor]\ndriver = "sim"\n[sim]\nroot = "/dev/shm/palm-%s"\nmemory_limit = "1G"\n' "$1"; }
tpm() { printf '[attestation]\nmode = "tpm"\ntpm = "device:/dev/tpmrm0"\n'; }
{ tls /etc/palm/tls/host-a.pem tpm; sim a
  printf '[listen]\naddress = "127.0.0.1"\nport = 7410\n[security]\ncoordinator_certificate = "/etc/palm/tls/coordinator.pem"\n'; tpm; } > /etc/palm/dest.toml
{ tls /etc/palm-b/host-b.pem /etc/palm-b/host-b.key; sim b
  printf '[listen]\naddress = "127.0.0.1"\nport = 7411\n[security]\ncoordinator_certificate = "/etc/palm/tls/coordinator.pem"\n'
  printf '[state]\ndirectory = "/var/lib/palm-b/dest"\n'; } > /etc/palm-b/dest.toml
link() { printf '[coordinator]\naddress = "127.0.0.1:7400"\ncertificate = "/etc/palm/tls/coordinator.pem"\nadvertise = "127.0.0.1:%s"\n' "$1"; }
{ tls /etc/palm/tls/host-a.pem tpm; sim a; link 7410; tpm; } > /etc/palm/source.toml
# Host A's TLS key never leaves its TPM: the TPM signs a certificate request, the CA issues from it.
palm-dest tls-key --config /etc/palm/dest.toml --csr "$W/host-a.csr" --name host-a >/dev/null
$CA host host-a --csr "$W/host-a.csr" --ip 127.0.0.1 >/dev/null 2>&1
install -m 0644 "$I/host-a.pem" /etc/palm/tls/host-a.pem
{ tls /etc/palm-b/host-b.pem /etc/palm-b/host-b.key; sim b; printf '[state]\ndirectory = "/var/lib/palm-b/source"\n'; link 7411; } > /etc/palm-b/source.toml
{ tls /etc/palm/tls/coordinator.pem /etc/palm/tls/coordinator.key
  printf '[listen]\naddress = "127.0.0.1"\nport = 7400\n[metrics]\nlisten = "127.0.0.1:9466"\n[agents]\nheartbeat_interval_s = 1\n[scheduler]\ninterval_s = 1\nauto_balance = false\n[attestation]\nrequire = "tpm"\n'
  printf 'ek_ca = ["/etc/palm/tls/tpm-vendor-root.pem", "/etc/palm/tls/tpm-vendor-issuer.pem"]\nquote_interval_s = 10\nmax_quote_age_s = 900\n'
  for key in allowed_agents allowed_configs allowed_hypervisors; do
    printf '%s = [%s]\n' $key "$(for c in /etc/palm/dest.toml /etc/palm-b/dest.toml; do palm-dest measure --config $c; done \
      | awk -F'"' -v k=$key '$0 ~ "^" k {print "\"" $2 "\""}' | sort -u | paste -sd, -)"
  done; } > /etc/palm/coordinator.toml
chmod 0640 /etc/palm/*.toml; chgrp palm /etc/palm/coordinator.toml

check "host A's certificate is for the TLS key in its TPM (palm-dest tls-key)" sh -c \
  "palm-dest tls-key --config /etc/palm/dest.toml | grep -q 'a certificate for this key'"
check "and host A has no TLS key file to copy" sh -c '! ls /etc/palm/tls/ | grep -q "host-a.key"'

step "start: the three units (host A), host B's agents as transient units"
systemctl enable --now palm-coordinator.service palm-dest.service palm-source.service
for u in dest source; do
  systemd-run --unit=palm-$u-b -p Type=notify -p NotifyAccess=main -p KillMode=process -p WatchdogSec=30s \
    /usr/local/bin/palm-$u serve --config /etc/palm-b/$u.toml
done
for u in palm-coordinator palm-dest palm-source palm-dest-b palm-source-b; do
  check "$u is active (READY=1 received)" systemctl is-active --quiet $u || journalctl -u $u -n 15 -o cat --no-pager
done
systemctl --no-pager status palm-coordinator palm-source | grep -E "●|Active|Status" || true

# GET /metrics from inside the unit's sandbox (bash's /dev/tcp: the image has no curl).
scrape() { exec 3<>/dev/tcp/127.0.0.1/9466 && printf 'GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n' >&3 && cat <&3; }
check "the coordinator unit serves Prometheus metrics ([metrics] listen)" bash -c "$(declare -f scrape); scrape | grep -q '^palm_coordinator_leader 1'"

step "host A's TPM: enrolled through its palm-source, attested by the coordinator"
export PALM_SERVER=127.0.0.1:7400 PALM_CERT=$I/ops.pem PALM_KEY=$I/ops.key PALM_CA=$W/ca/ca.pem
ADMIN="env PALM_CERT=$I/admin.pem PALM_KEY=$I/admin.key palm-coordinator"
attestation() { palm-coordinator hosts --json | grep -A12 '"host" : "host-a"' | grep '"attestation"'; }
check "host A's TPM proves its attestation key (EK certificate, credential activated)" within 90 sh -c "palm-coordinator hosts | grep host-a | grep -q 'proven, waiting for hosts enroll'" \
  || { palm-coordinator hosts; journalctl -u palm-source -u palm-coordinator -o cat --no-pager | grep -iE "tpm|enroll|credential" | tail -15; }
check "an operator may not enroll it" sh -c '! palm-coordinator hosts enroll host-a'
check "an admin enrolls it" $ADMIN hosts enroll host-a
check "its first quote is checked: nothing allowed yet" within 90 sh -c "palm-coordinator hosts | grep host-a | grep -q 'boot component not allowed'" \
  || { palm-coordinator hosts; journalctl -u palm-source -u palm-coordinator -o cat --no-pager | grep -iE "tpm|quote|attest" | tail -15; }
# Learning allows what the host has run so far: this job's tools run once first, as a host's
# ordinary workload would have before an operator declares it good.
for tool in "palm-simguest --help" "timeout 1 true" "journalctl -n 0" "rm --version" "mkdir --version" "sed --version" "head --version" \
            "tail --version" "cat --version" "awk --version" "cut --version" "od --version" "wc --version" "sort --version" \
            "sha256sum --version" "seq 1" "install --version" "sleep 0" "grep --version" "printf x"; do $tool >/dev/null 2>&1; done
# Once a quote covers them, the coordinator's copy of the host's IMA log lists them.
check "the coordinator follows host A's IMA log (the tools just run appear in policy diff)" \
  within 60 sh -c "palm-coordinator attestation policy diff host-a | grep -q /usr/bin/timeout"
$ADMIN attestation policy learn --host host-a
$ADMIN attestation policy show > "$W/policy.txt"
echo "  policy v1: $(grep -c '^file' "$W/policy.txt") files, $(grep -c '^boot' "$W/policy.txt") boot components"
# (A file is allowed by its digest wherever it lies: palm-dest was first measured where install.sh ran it from.)
check "the policy learned from host A allows its boot and palm-dest as IMA measured it" \
  sh -c "grep -q \"$(sha256sum /usr/local/bin/palm-dest | cut -c1-64)\" '$W/policy.txt' && grep -q '^boot' '$W/policy.txt'"
check "host A is trusted at its next quote" within 60 sh -c "palm-coordinator hosts | grep host-a | grep -q 'tpm trusted'"
palm-coordinator hosts

step "a VM on host B, migrated to host A through the coordinator, attested by A's TPM"
palm-simguest create demo --root /dev/shm/palm-b --memory 16M --rate 100
for _ in $(seq 100); do palm-coordinator vms 2>/dev/null | grep -q demo && break; sleep 0.2; done
check "migrate --wait exits 0" timeout 300 palm-coordinator migrate demo --to host-a --wait
journalctl -u palm-source-b -o cat --no-pager | grep -E "attested|round|stop-and-copy|committed" | tail -8
palm-coordinator history
check "the source checked host A's quote, boot log and IMA log, and that its TLS key is in its TPM" sh -c \
  "journalctl -u palm-source-b -o cat --no-pager | grep 'attested by its TPM' | grep -q 'its TLS key in the TPM'"
check "the VM runs on host A" sh -c 'palm-simguest list --root /dev/shm/palm-a | grep -q "demo.*running"'
check "and not on host B" sh -c '! palm-simguest list --root /dev/shm/palm-b | grep -q demo'
check "its memory check passes" sh -c 'palm-simguest check demo --root /dev/shm/palm-a | grep -q "failures 0"'

step "palm-dest restarted with a preloaded library: refused before the first page, by name"
install -m 0644 "$S/snoop.so" /usr/local/lib/snoop.so
mkdir -p /etc/systemd/system/palm-dest.service.d
printf '[Service]\nEnvironment=LD_PRELOAD=/usr/local/lib/snoop.so\n' > /etc/systemd/system/palm-dest.service.d/snoop.conf
systemctl daemon-reload; timeout 150 systemctl restart palm-dest
check "the library is loaded into palm-dest" within 30 test -e /dev/shm/snoop-loaded
check "IMA measured it" grep -q /usr/local/lib/snoop.so $IMA
palm-simguest create second --root /dev/shm/palm-b --memory 16M --rate 100
for _ in $(seq 100); do palm-coordinator vms 2>/dev/null | grep -q second && break; sleep 0.2; done
timeout 300 palm-coordinator migrate second --to host-a --wait > "$W/refused.out" 2>&1
echo "  refused: $(grep -o 'file not allowed[^;]*' "$W/refused.out" | head -1)"
check "the migration failed, naming the library" grep -q "file not allowed: /usr/local/lib/snoop.so sha256:" "$W/refused.out"
check "before the first page (no pre-copy round on the source)" sh -c "! journalctl -u palm-source-b -o cat --no-pager | grep -q 'migration of second.*round 0'"
check "the VM still runs on host B, and only there" sh -c 'palm-simguest list --root /dev/shm/palm-b | grep -q "second.*running" && ! palm-simguest list --root /dev/shm/palm-a | grep -q second'
check "the coordinator's next quote makes host A untrusted, naming the library" within 60 sh -c "palm-coordinator hosts | grep host-a | grep -q 'untrusted: file not allowed: /usr/local/lib/snoop.so'"
check "policy diff shows it" sh -c "palm-coordinator attestation policy diff host-a | grep -q /usr/local/lib/snoop.so"
rm -rf /etc/systemd/system/palm-dest.service.d; systemctl daemon-reload; timeout 150 systemctl restart palm-dest
check "restarted normally, host A stays untrusted: IMA keeps the library in its log until a reboot" sh -c \
  "palm-coordinator migrate second --to host-a 2>&1 | grep -q 'host-a receives no VMs: tpm untrusted: file not allowed: /usr/local/lib/snoop.so'"
$ADMIN attestation policy learn --host host-a >/dev/null   # the operator's decision: that library is allowed
check "once an admin allows it, host A is trusted again" within 60 sh -c "palm-coordinator hosts | grep host-a | grep -q 'tpm trusted'"
check "and a migration to it commits" timeout 300 palm-coordinator migrate second --to host-a --wait

step "what systemd and journald saw"
for u in palm-coordinator palm-source palm-dest-b; do echo "$u: $(systemctl show -p StatusText --value $u)"; done
check "palm-source StatusText reports its coordinator" sh -c 'systemctl show -p StatusText --value palm-source | grep -q "reporting to 127.0.0.1:7400"'
check "palm-dest-b StatusText names its port" sh -c 'systemctl show -p StatusText --value palm-dest-b | grep -q "listening on 127.0.0.1:7411"'
check "palm-coordinator StatusText counts hosts" sh -c 'systemctl show -p StatusText --value palm-coordinator | grep -q "2/2 hosts up"'
check "the coordinator's watchdog pings arrive" sh -c '[ "$(systemctl show -p WatchdogTimestampMonotonic --value palm-coordinator)" != 0 ]'
journalctl -o json -u palm-source-b --no-pager > "$W/source.json"
journalctl -o json -u palm-dest --no-pager > "$W/dest.json"
grep '"PALM_EVENT":"migration.committed"' "$W/source.json" | head -1
check "journal: palm-source's commit, with its MESSAGE_ID and fields" \
  sh -c "grep '\"PALM_EVENT\":\"migration.committed\"' $W/source.json | grep '\"VM\":\"demo\"' | grep '\"SYSLOG_IDENTIFIER\":\"palm-source\"' | grep -q '\"MESSAGE_ID\":\"[0-9a-f]\{32\}\"'"
ID=$(grep '"PALM_EVENT":"migration.committed"' "$W/source.json" | head -1 | sed 's/.*"MESSAGE_ID":"\([0-9a-f]*\)".*/\1/')
check "journalctl MESSAGE_ID=… finds it" sh -c "journalctl MESSAGE_ID=$ID -o cat --no-pager | grep -q 'migration of demo committed'"
check "journal: palm-dest resumed the VM (PEER, VM fields)" \
  sh -c "grep '\"PALM_EVENT\":\"migration.resumed\"' $W/dest.json | grep '\"VM\":\"demo\"' | grep -q '\"PEER\":\"host-b\"'"
check "journal: round records carry ROUND" sh -c "grep '\"PALM_EVENT\":\"migration.round\"' $W/source.json | grep -q '\"ROUND\":\"0\"'"

step "reload and stop"
timeout 60 systemctl reload palm-coordinator
check "reload: still active" systemctl is-active --quiet palm-coordinator
check "reload: journal says so" sh -c "journalctl -u palm-coordinator -o json --no-pager | grep -q '\"PALM_EVENT\":\"daemon.reloaded\"'"
timeout 150 systemctl stop palm-source
check "stop: palm-source ended cleanly" sh -c '[ "$(systemctl show -p Result --value palm-source)" = success ]'
check "stop: journal has STOPPING's event" sh -c "journalctl -u palm-source -o json --no-pager | grep -q '\"PALM_EVENT\":\"daemon.stopping\"'"
check "the VM still runs on host A after the agents stop" sh -c 'timeout 150 systemctl stop palm-dest palm-dest-b palm-source-b; palm-simguest list --root /dev/shm/palm-a | grep -q "demo.*running"'
check "audit log intact" palm-coordinator audit verify --db /var/lib/palm/coordinator/palm.sqlite --coordinator-cert /etc/palm/tls/coordinator.pem

echo
echo "RESULT: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
