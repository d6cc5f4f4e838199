#!/usr/bin/env bash
# Builds the image integration/systemd boots: a Debian 12 root (debootstrap, minbase) with systemd
# as PID 1, journald, openssl and palm's runtime libraries, packed as an initramfs, plus a Debian
# kernel. Everything comes from the machine's own apt mirror. Cached in $CACHE; rebuilt only when
# this script changes.
#   integration/systemd/build-image.sh CACHE_DIR
set -euo pipefail
CACHE=${1:?usage: build-image.sh CACHE_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
# The debootstrapped base is kept across image rebuilds (it is the slow part). It carries palm's
# runtime libraries as a host where scripts/install.sh has run would (the VM has no network for
# install.sh to fetch them; the job checks that install.sh finds every one of them).
PACKAGES=systemd-sysv,dbus,openssl,kmod,procps,iproute2,$(cd "$HERE/../.." && scripts/install.sh --runtime-packages | paste -sd, -)
STAMP=$( (cat "$HERE/build-image.sh" "$HERE/guest-job.service"; echo "$PACKAGES") | sha256sum | cut -c1-16)
if [ -f "$CACHE/image.$STAMP" ] && [ -f "$CACHE/rootfs.cpio.zst" ] && [ -f "$CACHE/vmlinuz" ]; then
  echo "image: cached ($CACHE)"; exit 0
fi
mkdir -p "$CACHE"; cd "$CACHE"
rm -rf rootfs kern debs image.* rootfs.cpio.zst vmlinuz
# The Debian mirror this machine already uses (never a hard-coded host).
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
KV=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {sub("linux-image-", "", $2); print $2; exit}')

if [ ! -f "base.$PACKAGES" ]; then
  echo "image: debootstrap bookworm from $MIRROR"
  rm -rf base base.*
  debootstrap --variant=minbase --include=$PACKAGES bookworm base "$MIRROR" > debootstrap.log 2>&1 || { tail -20 debootstrap.log; exit 1; }
  touch "base.$PACKAGES"
fi
echo "image: kernel $KV"
cp -a base rootfs

# Kernel and just the modules the share needs (9p over virtio).
(mkdir -p debs && chmod 0777 debs && cd debs && apt-get download "linux-image-$KV" >/dev/null 2>&1)
dpkg -x debs/linux-image-"$KV"*.deb kern
cp "kern/boot/vmlinuz-$KV" vmlinuz
depmod -b kern "$KV"
mkdir -p "rootfs/lib/modules/$KV"; cp kern/lib/modules/"$KV"/modules.{order,builtin*} "rootfs/lib/modules/$KV/"
for m in 9p 9pnet_virtio virtio_pci; do modprobe -d kern -S "$KV" --show-depends $m; done \
  | awk '$1 == "insmod" {print $2}' | sort -u | while read -r f; do
      r=${f#*kern/}; mkdir -p "rootfs/$(dirname "$r")"; cp "$f" "rootfs/$r"; done
depmod -b rootfs "$KV"

# systemd boots straight from the initramfs root; the host's share appears at /mnt/host and the
# job unit runs the test there, then powers off.
printf '9pnet_virtio\n9p\n' > rootfs/etc/modules-load.d/palm-share.conf
echo 'host0 /mnt/host 9p trans=virtio,version=9p2000.L,msize=262144,nofail 0 0' > rootfs/etc/fstab
mkdir -p rootfs/mnt/host
install -m 0644 "$HERE/guest-job.service" rootfs/etc/systemd/system/palm-integration.service
ln -sf /etc/systemd/system/palm-integration.service rootfs/etc/systemd/system/multi-user.target.wants/palm-integration.service
echo palm-it > rootfs/etc/hostname
# Nothing here needs a login prompt, time sync or periodic jobs.
for u in getty@.service serial-getty@.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
         e2scrub_all.timer fstrim.timer systemd-networkd-wait-online.service; do
  ln -sf /dev/null "rootfs/etc/systemd/system/$u"
done
rm -rf rootfs/usr/share/{doc,man,locale}/* rootfs/var/lib/apt/lists/* rootfs/var/cache/apt/*.bin
(cd rootfs && find . | cpio -o -H newc 2>/dev/null | zstd -T0 -10 -q) > rootfs.cpio.zst
rm -rf rootfs kern debs
touch "image.$STAMP"
echo "image: built ($(du -h rootfs.cpio.zst | cut -f1))"
