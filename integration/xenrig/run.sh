#!/usr/bin/env bash
# The Xen integration test: boots Debian's Xen 4.17 with a Debian dom0 under QEMU (TCG), creates a
# 128 MiB PVH guest that dirties and checks its memory, and in dom0 runs job.sh: palm-source →
# palm-dest with the destination killed mid-transfer (guest stays), a palm live migration over
# mTLS with ticket and attestation (≥ 2 pre-copy rounds, guest keeps running, memory check passes),
# and `xl migrate` of the same guest for comparison (total time and downtime, side by side).
# Exit 0 iff every check passed; 3 when the run failed because of the emulation and not palm (the
# guest never booted, or QEMU/Xen/dom0 died before the job ended, or the guest kernel faulted
# while memcheck found no corrupted page), 1 for any other failure. The rig is cached per machine
# in XENRIG_CACHE (default /var/cache/palm/xenrig, so clean clones share it; rebuilt when a file
# of integration/xenrig changes); binaries use the static Swift standard library.
#   integration/xenrig/run.sh            MEMCHECK=MIB,PAGES,MS overrides the guest's workload
# For experiments with the emulation: XENRIG_TCG_THREAD=single|multi, XENRIG_CPU_EXTRA=,-flag,…
# (appended to -cpu), XENRIG_JOB=FILE (another job), XENRIG_EXTRA="FILES" (copied into dom0's
# /usr/local/bin), XENRIG_SERIAL=PATH (console socket, for two rigs at once), XENRIG_TIMEOUT=S.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=integration/xenrig
T0=$(date +%s)
need=()
for p in debootstrap:debootstrap qemu-system-x86_64:qemu-system-x86 zstd:zstd cpio:cpio depmod:kmod \
         busybox:busybox-static gcc:gcc swtpm:swtpm swtpm_setup:swtpm-tools; do
  command -v "${p%%:*}" >/dev/null || need+=("${p##*:}")
done
dpkg -s libc6-dev libxen-dev >/dev/null 2>&1 || need+=(libc6-dev libxen-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
CACHE=${XENRIG_CACHE:-/var/cache/palm/xenrig}
"$HERE/build-rig.sh" "$CACHE"
T1=$(date +%s)

SHARE=$(mktemp -d /tmp/palm-xenrig.XXXXXX)
trap '[ -f "$SHARE/tpm/swtpm.pid" ] && kill "$(cat "$SHARE/tpm/swtpm.pid")" 2>/dev/null; rm -rf "$SHARE"' EXIT
# palm's binaries, the dom0 tools and a CA with the rig's identities: a second initramfs archive.
"$HERE/stage.sh" "$CACHE" "$SHARE/dom0.cpio.zst"
T2=$(date +%s)
# The capability bounding set palm-dest's unit grants, as /proc/PID/status prints it.
capmask() {
  local m=0 n
  for c in $(sed -n 's/^CapabilityBoundingSet=//p' "$1"); do
    n=$(awk -v c="$c" '$1 == "#define" && $2 == c {print $3}' /usr/include/linux/capability.h)
    [ -n "$n" ] || { echo "unknown capability $c in $1" >&2; exit 1; }
    m=$(( m | (1 << n) ))
  done
  printf '%016x' $m
}
{ [ -n "${MEMCHECK:-}" ] && echo "export MEMCHECK=$MEMCHECK"; echo "export DEST_UNIT_CAPBND=$(capmask deploy/palm-dest.service)"
  cat "$HERE/job-lib.sh" "${XENRIG_JOB:-$HERE/job.sh}"; } > "$SHARE/run.sh"

# Under TCG: smap=0 (dom0 dies at its first hypercall otherwise), no RDTSCP (PVH guests crash on
# it). No XSAVE: with it, TCG (QEMU 7.2) under Xen's FPU switching corrupted SIMD state now and
# then — Swift binaries in dom0 died of heap corruption, palm's SHA-256 of its own executable came
# out wrong once per boot or so, the PVH guest triple-faulted in one boot of three (and in every
# boot with spec-ctrl=eager-fpu, which switches FPU state more often). Without XSAVE, Xen and both
# kernels use FXSAVE and all of that stopped. AVX needs XSAVE; PCID/INVPCID are off as well to keep
# the emulation on well-trodden paths. dom0 keeps 2 vCPUs (with one, source, destination and
# libxenguest share it and a migration takes minutes), pinned to CPUs 0-1, and the guest has CPU 2
# to itself (guest/pvh.cfg), as on a production Xen host: every guest death seen under the
# emulation came while palm's two busy agents kept preempting the guest's vCPU.
# The serial console is also a socket: integration/xenrig/xen-keys.sh sends Xen debug keys to a
# running rig (state of every CPU and domain when something hangs).
# The host's TPM: swtpm behind QEMU's tpm-tis (dom0 reaches it as /dev/tpmrm0; the job attests
# the destination with it and keeps its TLS key in it).
integration/tpm/swtpm-for-qemu.sh "$SHARE/tpm"
SERIAL_SOCKET=${XENRIG_SERIAL:-$CACHE/serial.sock}
rm -f "$SERIAL_SOCKET"
echo "booting Xen 4.17 + dom0 under QEMU (TCG)…"
status=0
timeout "${XENRIG_TIMEOUT:-2400}" qemu-system-x86_64 -accel tcg,thread=${XENRIG_TCG_THREAD:-multi} -cpu max,-rdtscp,-avx,-avx2,-pcid,-invpcid,-xsave${XENRIG_CPU_EXTRA:-} -M pc -m 3072 -smp 3 \
  -no-reboot -display none -monitor none \
  -chardev "socket,id=com1,path=$SERIAL_SOCKET,server=on,wait=off,logfile=$SHARE/serial.log" -serial chardev:com1 \
  -kernel "$CACHE/xen" \
  -append "console=com1 com1=115200,8n1 dom0_mem=1536M,max:1536M dom0_max_vcpus=2 dom0_vcpus_pin smap=0 pcid=0 loglvl=all guest_loglvl=all" \
  -initrd "$CACHE/vmlinuz console=hvc0 rdinit=/init,$SHARE/dom0.cpio.zst" \
  -chardev socket,id=chrtpm,path="$SHARE/tpm/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0 \
  -virtfs "local,path=$SHARE,mount_tag=host0,security_model=none,id=host0" || status=$?
T3=$(date +%s)
if [ -f "$SHARE/out.log" ]; then cat "$SHARE/out.log"; else echo "no job output; serial console:"; tail -60 "$SHARE/serial.log"; fi
LAST=.build/xenrig-last
rm -rf "$LAST"; mkdir -p "$LAST" && cp "$SHARE"/serial.log "$SHARE"/out.log "$SHARE"/results.txt "$SHARE"/*.log.tail "$LAST"/ 2>/dev/null || true
echo
echo "timings: rig $((T1 - T0)) s, static build $((T2 - T1)) s, boot + job + power-off $((T3 - T2)) s (logs in $LAST)"
if grep -q "XENRIG: job rc=0" "$SHARE/out.log" 2>/dev/null; then echo "xen integration: passed"; exit 0; fi
# Who is at fault. The emulation: dom0 never finished the job (QEMU, Xen or dom0 died or hung), the
# guest never booted, or the guest kernel faulted while memcheck saw every page intact. Anything
# else — a palm check failing with a healthy guest — is palm's.
if ! grep -q "XENRIG: job rc=" "$SHARE/out.log" 2>/dev/null; then
  echo "qemu exited $status; the job never ended:"; tail -5 "$SHARE/serial.log"
  if grep -qE "Panic on CPU|Kernel panic|Triple fault|BUG: |FATAL TRAP|\(XEN\) \*\*\*" "$SHARE/serial.log" || [ "$status" != 124 ]; then
    grep -m3 -E "Panic on CPU|Kernel panic|Triple fault|BUG: |FATAL TRAP" "$SHARE/serial.log"
    echo "xen integration: FAILED (emulation: QEMU, Xen or dom0 died before the job ended)"; exit 3
  fi
  # A job that hangs on a healthy machine until the timeout is palm's until shown otherwise.
  echo "xen integration: FAILED (the job hung until the ${XENRIG_TIMEOUT:-2400} s timeout; no Xen or kernel fault in the serial log)"; exit 1
fi
if grep -q "^FAIL: guest booted with memcheck" "$SHARE/out.log"; then
  echo "xen integration: FAILED (emulation: the guest did not boot)"; exit 3
fi
if grep -q "^NOTE: the guest itself faulted" "$SHARE/out.log" && ! grep -q "memcheck: FAIL" "$SHARE/out.log" \
   && ! grep -q "^FAIL: memcheck reports no corrupted page" "$SHARE/out.log"; then
  echo "xen integration: FAILED (emulation: the guest kernel faulted; memcheck found no corrupted page)"; exit 3
fi
echo "xen integration: FAILED"
exit 1
