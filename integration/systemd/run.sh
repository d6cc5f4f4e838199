#!/usr/bin/env bash
# The systemd integration test: boots Debian 12 with systemd as PID 1 under QEMU (TCG), installs
# palm in it with scripts/install.sh, runs the three units and a sim migration through the
# coordinator CLI, and checks systemctl and journalctl from inside (job.sh). The VM has a TPM 2.0
# (swtpm behind QEMU's tpm-tis, its EK certificate from a CA made here, the "manufacturer") and
# its kernel measures with IMA: host B's palm-dest attests with the kernel's real logs, and a
# palm-dest started with a preloaded library is refused. Exit 0 iff every check passed. The image is cached in $SYSTEMD_IT_CACHE (default /var/cache/palm/systemd-it,
# outside the clone so CI runs on one machine share it; rebuilt when build-image.sh changes);
# binaries are built with the static Swift standard library.
#   integration/systemd/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=integration/systemd
T0=$(date +%s)
need=()
for p in debootstrap:debootstrap qemu-system-x86_64:qemu-system-x86 zstd:zstd cpio:cpio depmod:kmod swtpm:swtpm swtpm_setup:swtpm-tools cc:gcc; do
  command -v "${p%%:*}" >/dev/null || need+=("${p##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
CACHE=${SYSTEMD_IT_CACHE:-/var/cache/palm/systemd-it}
"$HERE/build-image.sh" "$CACHE/image"
T1=$(date +%s)

source scripts/lib.sh
ensure_toolchain
for p in palm-coordinator palm-source palm-dest palm-simguest generate-manual; do
  swift build -c release --static-swift-stdlib --build-path .build/static --product "$p" >/dev/null
done
T2=$(date +%s)

SHARE=$(mktemp -d /tmp/palm-systemd-it.XXXXXX)
trap '[ -f "$SHARE/tpm/swtpm.pid" ] && kill "$(cat "$SHARE/tpm/swtpm.pid")" 2>/dev/null; rm -rf "$SHARE"' EXIT
mkdir -p "$SHARE/bin" "$SHARE/repo/scripts" "$SHARE/repo/certs"
for p in palm-coordinator palm-source palm-dest palm-simguest generate-manual; do cp ".build/static/release/$p" "$SHARE/bin/"; done
cp -r deploy README.md "$SHARE/repo/"; cp scripts/install.sh scripts/lib.sh "$SHARE/repo/scripts/"; cp certs/palm-ca "$SHARE/repo/certs/"
cp "$HERE/job.sh" "$SHARE/job.sh"

# The VM's TPM: manufactured here (an EK certificate from a local CA the coordinator will trust),
# served to QEMU on a socket; it ends when QEMU disconnects.
integration/tpm/swtpm-for-qemu.sh "$SHARE/tpm"
# The attacker's library for host B's palm-dest: it only marks that it was loaded.
printf '#include <stdio.h>\n__attribute__((constructor)) static void loaded(void) { FILE *f = fopen("/dev/shm/snoop-loaded", "w"); if (f) fclose(f); }\n' > "$SHARE/snoop.c"
cc -shared -fPIC -o "$SHARE/snoop.so" "$SHARE/snoop.c"

echo "booting Debian 12 + systemd under QEMU (TCG)…"
status=0
timeout 900 qemu-system-x86_64 -accel tcg,thread=multi -M pc -cpu max -m 2048 -smp 2 \
  -kernel "$CACHE/image/vmlinuz" -initrd "$CACHE/image/rootfs.cpio.zst" \
  -append "console=ttyS0 rdinit=/lib/systemd/systemd panic=-1 systemd.show_status=0 quiet" \
  -virtfs "local,path=$SHARE,mount_tag=host0,security_model=none,id=host0" \
  -chardev socket,id=chrtpm,path="$SHARE/tpm/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0 \
  -display none -serial "file:$SHARE/console.log" -no-reboot || status=$?
T3=$(date +%s)
cat "$SHARE/out.log" 2>/dev/null || { echo "no job output; the VM's console:"; tail -40 "$SHARE/console.log"; }
echo
echo "timings: image $((T1 - T0)) s, static build $((T2 - T1)) s, boot + job + power-off $((T3 - T2)) s"
[ "$status" = 0 ] || { echo "qemu exited $status"; tail -20 "$SHARE/console.log"; exit 1; }
grep -qx "exit 0" "$SHARE/job.exit" 2>/dev/null || { echo "systemd integration: FAILED"; exit 1; }
echo "systemd integration: passed"
