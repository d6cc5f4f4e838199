#!/usr/bin/env bash
# Installs palm on a host: binaries, systemd units, example configurations, the palm system user,
# man pages and shell completions (bash, zsh, fish) generated from the commands themselves, the
# Grafana dashboard.
#
#   scripts/install.sh [--root DIR] [--prefix /usr/local] [--bin-dir DIR]
#   scripts/install.sh --uninstall [--root DIR] [--prefix /usr/local] [--purge]
#   scripts/install.sh --check-libraries [--bin-dir DIR]
#   scripts/install.sh --runtime-packages
#
# Before installing on this host, every shared library the binaries load is checked (ldd); a
# missing one is installed from its Debian package (apt-get), and install.sh stops — naming the
# library, the binary and the package — if it still cannot be found: a unit never dies at start
# of a missing shared object. --check-libraries does only that; --runtime-packages prints the
# Debian packages palm needs at run time (for images built elsewhere). palm-simguest needs no
# Xen library; palm-source and palm-dest load Xen's toolstack libraries (libxenmisc4.17, a few
# MiB, not the hypervisor) whichever driver they use. PALM_INSTALL_APT=0: check, never fetch.
#
# --root DIR     install into DIR instead of / (images, tests); systemctl is only used for /
# --bin-dir DIR  take already-built binaries from DIR instead of building them
#                (default: swift build -c release --static-swift-stdlib, so hosts need no Swift)
# --purge        with --uninstall: also remove /etc/palm and /var/lib/palm
#
# Configurations already in /etc/palm are never overwritten; the examples are installed only
# where no file exists. Nothing is enabled or started: that is the operator's decision
# (systemctl enable --now palm-dest palm-source, and palm-coordinator on the control host).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages of the shared libraries palm's binaries load, and which library comes from which.
RUNTIME_PACKAGES="libssl3 libsystemd0 libsqlite3-0 libpq5 liblz4-1 libzstd1 libxenmisc4.17 libcurl4 libstdc++6 libgcc-s1
  libtss2-esys-3.0.2-0 libtss2-tctildr0 libtss2-mu0 libtss2-rc0 libtss2-sys1 libtss2-tcti-device0"
package_for() {
  case "$1" in
    libssl.so.3|libcrypto.so.3) echo libssl3;;
    libsystemd.so.0) echo libsystemd0;;
    libsqlite3.so.0) echo libsqlite3-0;;
    libpq.so.5) echo libpq5;;
    libcurl.so.4) echo libcurl4;;   # Foundation's networking, which the metrics endpoint's HTTP server links
    liblz4.so.1) echo liblz4-1;;
    libzstd.so.1) echo libzstd1;;
    libxen*.so*|libyajl.so.2) echo libxenmisc4.17;;   # Xen 4.17's toolstack; its dependencies bring the rest
    libstdc++.so.6) echo libstdc++6;;
    libgcc_s.so.1) echo libgcc-s1;;
    libtss2-esys.so.0) echo libtss2-esys-3.0.2-0;;   # tpm2-tss: ESAPI, the TCTI loader, marshalling (TPM attestation)
    libtss2-tctildr.so.0) echo libtss2-tctildr0;;
    libtss2-mu.so.0) echo libtss2-mu0;;
    libtss2-rc.so.0) echo libtss2-rc0;;
    libtss2-sys.so.1) echo libtss2-sys1;;
    libtss2-tcti-device.so.0) echo libtss2-tcti-device0;;
  esac
}
# "BINARY LIBRARY" for every library a binary in $1 loads that the dynamic linker cannot find.
missing_libraries() {
  local p
  for p in $PROGRAMS; do
    LC_ALL=C ldd "$1/$p" 2>/dev/null | awk -v b="$p" '/=> not found/ {print b, $1}'
  done
  # Loaded at run time, not linked (ldd cannot see it): the TCTI of a host's TPM (/dev/tpmrm0),
  # which tpm2-tss's TCTI loader opens for the agents.
  if LC_ALL=C ldd "$1/palm-dest" 2>/dev/null | grep -q libtss2-tctildr && ! ldconfig -p 2>/dev/null | grep -q 'libtss2-tcti-device.so.0 '; then
    echo "palm-dest libtss2-tcti-device.so.0"
  fi
}
# Installs the packages of missing libraries (apt-get, as root), then fails naming what is still missing.
ensure_runtime_libraries() {
  local missing packages=() unknown=() bin lib pkg
  missing=$(missing_libraries "$1")
  [ -z "$missing" ] && { echo "runtime libraries: every library of $PROGRAMS is present"; return 0; }
  while read -r bin lib; do
    pkg=$(package_for "$lib")
    if [ -n "$pkg" ]; then packages+=("$pkg"); else unknown+=("$lib ($bin)"); fi
  done <<< "$missing"
  if [ ${#unknown[@]} -gt 0 ]; then
    echo "install.sh: no Debian package is known for ${unknown[*]}; install the library, then run install.sh again" >&2
    return 1
  fi
  mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
  if [ "${PALM_INSTALL_APT:-1}" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "runtime libraries: installing ${packages[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null; } || true
  fi
  missing=$(missing_libraries "$1")
  [ -z "$missing" ] && { echo "runtime libraries: installed ${packages[*]}"; return 0; }
  while read -r bin lib; do
    echo "install.sh: $bin needs $lib (Debian package $(package_for "$lib")), which is not installed" >&2
  done <<< "$missing"
  return 1
}

ROOT="" PREFIX=/usr/local BIN_DIR="" UNINSTALL=0 PURGE=0 CHECK_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=${2:?--root needs a directory}; shift 2;;
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2;;
    --bin-dir) BIN_DIR=${2:?--bin-dir needs a directory}; shift 2;;
    --uninstall) UNINSTALL=1; shift;;
    --purge) PURGE=1; shift;;
    --check-libraries) CHECK_ONLY=1; shift;;
    --runtime-packages) printf '%s\n' $RUNTIME_PACKAGES; exit 0;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 64;;
  esac
done
[ -z "$ROOT" ] || ROOT=$(realpath -m "$ROOT")
UNITS="palm-coordinator.service palm-source.service palm-dest.service"
PROGRAMS="palm-coordinator palm-source palm-dest palm-simguest"
# The operators' commands: man pages and completions.
COMMANDS="palm-coordinator palm-source palm-dest"
LIVE_SYSTEMD=0
[ -z "$ROOT" ] && [ -d /run/systemd/system ] && LIVE_SYSTEMD=1

if [ "$UNINSTALL" = 1 ]; then
  if [ "$LIVE_SYSTEMD" = 1 ]; then systemctl disable --now $UNITS 2>/dev/null || true; fi
  for p in $PROGRAMS; do rm -f "$ROOT$PREFIX/bin/$p"; done
  for u in $UNITS; do rm -f "$ROOT/etc/systemd/system/$u"; done
  rm -f "$ROOT/usr/lib/sysusers.d/palm.conf"
  rm -rf "$ROOT$PREFIX/share/doc/palm"
  for p in $COMMANDS; do
    rm -f "$ROOT$PREFIX/share/man/man1/$p.1" "$ROOT$PREFIX/share/bash-completion/completions/$p" \
          "$ROOT$PREFIX/share/zsh/site-functions/_$p" "$ROOT$PREFIX/share/fish/vendor_completions.d/$p.fish"
  done
  if [ "$PURGE" = 1 ]; then rm -rf "$ROOT/etc/palm" "$ROOT/var/lib/palm"; fi
  if [ "$LIVE_SYSTEMD" = 1 ]; then systemctl daemon-reload; fi
  echo "palm uninstalled from ${ROOT:-/}$([ "$PURGE" = 1 ] && echo ", configuration and state purged" || echo "; /etc/palm and /var/lib/palm kept (--purge removes them)")"
  exit 0
fi

if [ -z "$BIN_DIR" ]; then
  source scripts/lib.sh
  ensure_toolchain
  for p in $PROGRAMS generate-manual; do swift build -c release --static-swift-stdlib --build-path .build/static --product "$p" >/dev/null; done
  BIN_DIR=.build/static/release
fi
for p in $PROGRAMS; do [ -x "$BIN_DIR/$p" ] || { echo "install.sh: $BIN_DIR/$p is missing" >&2; exit 1; }; done
# The binaries run on this host (an install into --root runs elsewhere: its image brings
# --runtime-packages itself).
if [ -z "$ROOT" ] || [ "$CHECK_ONLY" = 1 ]; then ensure_runtime_libraries "$BIN_DIR" || exit 1; fi
[ "$CHECK_ONLY" = 1 ] && exit 0

install -d -m 0755 "$ROOT$PREFIX/bin" "$ROOT/etc/systemd/system" "$ROOT/usr/lib/sysusers.d" "$ROOT$PREFIX/share/doc/palm"
for p in $PROGRAMS; do install -m 0755 "$BIN_DIR/$p" "$ROOT$PREFIX/bin/$p"; done
for u in $UNITS; do
  sed -e "s|/usr/local/bin/|$PREFIX/bin/|g" -e "s|/usr/local/share/doc/|$PREFIX/share/doc/|g" "deploy/$u" > "$ROOT/etc/systemd/system/$u"
  chmod 0644 "$ROOT/etc/systemd/system/$u"
done
install -m 0644 README.md "$ROOT$PREFIX/share/doc/palm/README.md"
install -m 0644 deploy/coordinator-ha.toml "$ROOT$PREFIX/share/doc/palm/coordinator-ha.toml.example"
install -m 0644 deploy/grafana/palm.json "$ROOT$PREFIX/share/doc/palm/grafana-palm.json"

# Man pages (swift-argument-parser's generate-manual, from the commands' own help) and completions.
MANUAL_TOOL="$BIN_DIR/generate-manual"
if [ ! -x "$MANUAL_TOOL" ] && command -v swift >/dev/null; then
  swift build --product generate-manual >/dev/null && MANUAL_TOOL="$(swift build --show-bin-path)/generate-manual"
fi
install -d -m 0755 "$ROOT$PREFIX/share/man/man1" "$ROOT$PREFIX/share/bash-completion/completions" \
  "$ROOT$PREFIX/share/zsh/site-functions" "$ROOT$PREFIX/share/fish/vendor_completions.d"
for p in $COMMANDS; do
  if [ -x "$MANUAL_TOOL" ]; then
    "$MANUAL_TOOL" "$BIN_DIR/$p" --output-directory "$ROOT$PREFIX/share/man/man1" >/dev/null
  fi
  "$BIN_DIR/$p" --generate-completion-script bash > "$ROOT$PREFIX/share/bash-completion/completions/$p"
  "$BIN_DIR/$p" --generate-completion-script zsh > "$ROOT$PREFIX/share/zsh/site-functions/_$p"
  "$BIN_DIR/$p" --generate-completion-script fish > "$ROOT$PREFIX/share/fish/vendor_completions.d/$p.fish"
done
[ -x "$MANUAL_TOOL" ] || echo "install.sh: man pages skipped: no generate-manual in $BIN_DIR and no Swift toolchain to build it" >&2

# The coordinator runs as the system user palm (the agents need root for the hypervisor).
echo 'u palm - "palm coordinator" /nonexistent /usr/sbin/nologin' > "$ROOT/usr/lib/sysusers.d/palm.conf"
chmod 0644 "$ROOT/usr/lib/sysusers.d/palm.conf"
if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT/etc"; touch "$ROOT/etc/passwd" "$ROOT/etc/group"
  systemd-sysusers --root="$ROOT" "$ROOT/usr/lib/sysusers.d/palm.conf"
else
  systemd-sysusers /usr/lib/sysusers.d/palm.conf
fi

# Configurations: examples only where the operator has none; readable by root and palm.
install -d -m 0750 "$ROOT/etc/palm" "$ROOT/etc/palm/tls"
for c in coordinator source dest policy; do
  if [ ! -e "$ROOT/etc/palm/$c.toml" ]; then install -m 0640 "deploy/$c.toml" "$ROOT/etc/palm/$c.toml"; fi
done
GID=$(awk -F: '$1 == "palm" {print $3}' "$ROOT/etc/group")
[ -n "$GID" ] && chgrp -R "$GID" "$ROOT/etc/palm"

if [ "$LIVE_SYSTEMD" = 1 ]; then systemctl daemon-reload; fi
cat <<MSG
palm installed into ${ROOT:-/}:
  $PREFIX/bin/{${PROGRAMS// /,}}
  /etc/systemd/system/{${UNITS// /,}}
  /etc/palm/{coordinator,source,dest,policy}.toml (existing files kept), /etc/palm/tls/ for certificates
Next: certificates into /etc/palm/tls (certs/palm-ca), edit /etc/palm/*.toml, then
  systemctl enable --now palm-dest palm-source          # every host
  systemctl enable --now palm-coordinator               # the control host
MSG
