#!/usr/bin/env bash
# Builds the Xen rig integration/xenrig boots: Debian's Xen 4.17 hypervisor (gunzipped for QEMU's
# multiboot loader), a Debian kernel, and a dom0 root (debootstrap minbase + the Xen tools + palm's
# runtime libraries) packed as an initramfs whose /init starts the toolstack, runs the job from the
# 9p share and powers off. The dom0 root carries a PVH guest: the same kernel plus a busybox
# initramfs running `memcheck` (dirties memory and checks every page it wrote).
# Everything comes from the machine's own apt mirror. Cached in CACHE; rebuilt only when a file of
# this folder changes (the debootstrapped base is kept across rebuilds: it is the slow part).
#   integration/xenrig/build-rig.sh CACHE_DIR
set -euo pipefail
CACHE=${1:?usage: build-rig.sh CACHE_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
STAMP=$(cd "$HERE" && cat build-rig.sh guest/* dom0-init | sha256sum | cut -c1-16)
if [ -f "$CACHE/rig.$STAMP" ] && [ -f "$CACHE/dom0.cpio.zst" ] && [ -f "$CACHE/xen" ] && [ -f "$CACHE/vmlinuz" ]; then
  echo "rig: cached ($CACHE)"; exit 0
fi
mkdir -p "$CACHE"; CACHE=$(cd "$CACHE" && pwd); cd "$CACHE"
rm -rf rootfs kern debs domu-root rig.* dom0.cpio.zst xen vmlinuz
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
KV=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {sub("linux-image-", "", $2); print $2; exit}')

# 1. dom0 root: Xen tools and hypervisor at the same version (security updates applied), palm's
#    runtime libraries (OpenSSL, libsystemd, SQLite, libpq, lz4, zstd, tpm2-tss with the device TCTI
#    the host's TPM is reached through).
PACKAGES=xen-utils-4.17,xen-hypervisor-4.17-amd64,busybox,kmod,iproute2,procps,libssl3,libsqlite3-0,libpq5,libcurl4,libsystemd0,liblz4-1,libzstd1,openssl
PACKAGES=$PACKAGES,libtss2-esys-3.0.2-0,libtss2-tctildr0,libtss2-mu0,libtss2-rc0,libtss2-sys1,libtss2-tcti-device0
# The two-host rig's shared storage: its disk served over NBD from outside both hosts.
PACKAGES=$PACKAGES,nbd-client
BASE_STAMP=base.$(echo "$PACKAGES" | sha256sum | cut -c1-16)   # the package list's, short enough for a file name
if [ ! -f "$BASE_STAMP" ]; then
  echo "rig: debootstrap bookworm from $MIRROR"
  rm -rf base base.*
  debootstrap --variant=minbase --include=$PACKAGES bookworm base "$MIRROR" > debootstrap.log 2>&1 || { tail -20 debootstrap.log; exit 1; }
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources base/etc/apt/sources.list.d/; rm -f base/etc/apt/sources.list
  fi
  mount -t proc proc base/proc; mount --bind /dev base/dev
  chroot base sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get -y -q upgrade && apt-get clean' > upgrade.log 2>&1 || tail -5 upgrade.log
  umount base/dev base/proc
  touch "$BASE_STAMP"
fi
echo "rig: kernel $KV"
cp -a base rootfs
zcat rootfs/boot/xen-4.17-amd64.gz > xen       # QEMU's multiboot loader wants the uncompressed ELF
rm -f rootfs/boot/xen-4.17-amd64*

# 2. Kernel (dom0 and the PVH guest) and the dom0's module set (virtio_net and nbd: the two-host rig's NIC and shared disk).
(mkdir -p debs && chmod 0777 debs && cd debs && apt-get download "linux-image-$KV" >/dev/null 2>&1)
dpkg -x debs/linux-image-"$KV"*.deb kern
cp "kern/boot/vmlinuz-$KV" vmlinuz
depmod -b kern "$KV"
rm -rf rootfs/lib/modules/*; mkdir -p "rootfs/lib/modules/$KV"
cp kern/lib/modules/"$KV"/modules.{order,builtin*} "rootfs/lib/modules/$KV/"
for m in xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-blkback xen-netback bridge 9p 9pnet_virtio virtio_pci virtio_net nbd loop; do
  modprobe -d kern -S "$KV" --show-depends $m; done | awk '$1 == "insmod" {print $2}' | sort -u | while read -r f; do
    r=${f#*kern/}; mkdir -p "rootfs/$(dirname "$r")"; cp "$f" "rootfs/$r"; done
depmod -b rootfs "$KV"

# 3. dom0 /init, console logs kept per guest (what the job reads to see a guest keep running).
install -m 0755 "$HERE/dom0-init" rootfs/init
echo 'XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console"' > rootfs/etc/default/xen
echo xenrig-dom0 > rootfs/etc/hostname
printf '127.0.0.1 localhost\n' > rootfs/etc/hosts

# 4. The PVH guest: busybox + memcheck (static) in an initramfs, its xl config, and the front-end
#    drivers of its vif and disk (insmod-ed by its init in dependency order, from lib/modules/order).
mkdir -p domu-root/bin domu-root/proc domu-root/sys domu-root/dev domu-root/lib/modules rootfs/root/domu
cp "$(command -v busybox)" domu-root/bin/busybox
for a in $(busybox --list); do [ "$a" = busybox ] || ln -sf busybox "domu-root/bin/$a"; done
for m in xen-netfront xen-blkfront; do modprobe -d kern -S "$KV" --show-depends $m; done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' \
  | while read -r f; do
      b=$(basename "$f")
      case "$b" in
        *.ko.xz) xz -dc "$f" > "domu-root/lib/modules/${b%.xz}"; b=${b%.xz};;
        *.ko.zst) zstd -dcq "$f" > "domu-root/lib/modules/${b%.zst}"; b=${b%.zst};;
        *) cp "$f" domu-root/lib/modules/;;
      esac
      echo "$b" >> domu-root/lib/modules/order
    done
gcc -O2 -static -o domu-root/bin/memcheck "$HERE/guest/memcheck.c"
install -m 0755 "$HERE/guest/domu-init" domu-root/init
(cd domu-root && find . | cpio -o -H newc 2>/dev/null | gzip -9) > rootfs/root/domu/domu.cpio.gz
cp vmlinuz rootfs/root/domu/vmlinuz
cp "$HERE/guest/pvh.cfg" rootfs/root/domu/

rm -rf rootfs/usr/share/{doc,man,locale}/* rootfs/var/lib/apt/lists/* rootfs/var/cache/apt/*.bin
(cd rootfs && find . | cpio -o -H newc 2>/dev/null | zstd -T0 -10 -q) > dom0.cpio.zst
rm -rf rootfs kern debs domu-root
touch "rig.$STAMP"
echo "rig: built ($(du -h dom0.cpio.zst | cut -f1) dom0, Xen $(strings xen | grep -m1 -o '4\.17\.[0-9][^ ]*' || echo 4.17))"
