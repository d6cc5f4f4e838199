#!/usr/bin/env bash
# What the Xen rigs' dom0s carry besides the cached image (build-rig.sh): palm's three daemons
# (static release build), the dom0 tools (xenwatch, netwatch), the unit files as-unit.sh emulates,
# the CA tool and a CA with the rigs' identities. They reach dom0 as a second initramfs archive
# appended to the cached one (the kernel unpacks concatenated archives): executing or hashing
# large files over the 9p share is not reliable in a Xen dom0, so the share carries only the job
# script in and the logs out.
#   integration/xenrig/stage.sh CACHE_DIR OUT.cpio.zst      (from the repository's root)
# XENRIG_EXTRA="FILES" are copied into dom0's /usr/local/bin as well.
set -euo pipefail
CACHE=${1:?usage: stage.sh CACHE_DIR OUT}
OUT=${2:?usage: stage.sh CACHE_DIR OUT}
HERE=integration/xenrig
source scripts/lib.sh
ensure_toolchain
for p in palm-coordinator palm-source palm-dest; do
  swift build -c release --static-swift-stdlib --build-path .build/static --product "$p" >/dev/null
done
STAGE=$(mktemp -d /tmp/palm-xenrig-stage.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/usr/local/bin" "$STAGE/root/palm"
for p in palm-coordinator palm-source palm-dest; do strip -o "$STAGE/usr/local/bin/$p" ".build/static/release/$p"; done
[ -n "${XENRIG_EXTRA:-}" ] && cp $XENRIG_EXTRA "$STAGE/usr/local/bin/"
# The agents run under what their units grant (integration/xenrig/as-unit.sh reads the units).
cp "$HERE/as-unit.sh" "$STAGE/usr/local/bin/"
# The CA tool: dom0 issues the certificate of the TLS key its TPM holds (from a request the TPM signs).
cp certs/palm-ca "$STAGE/usr/local/bin/"
mkdir -p "$STAGE/root/palm/units" && cp deploy/palm-source.service deploy/palm-dest.service "$STAGE/root/palm/units/"
gcc -O2 -Wall -o "$STAGE/usr/local/bin/xenwatch" "$HERE/tools/xenwatch.c" -lxenctrl -lxenstore
gcc -O2 -Wall -o "$STAGE/usr/local/bin/netwatch" "$HERE/tools/netwatch.c"
ca() { certs/palm-ca --dir "$STAGE/root/palm/ca" "$@" >/dev/null 2>&1; }
ca init
# One dom0 playing both hosts (run.sh): its identities on 127.0.0.1, a second host identity and
# an operator for the coordinator's path.
ca host xenrig --ip 127.0.0.1
ca host xenrig-coordinator --role coordinator --ip 127.0.0.1
ca host xenrig-b --ip 127.0.0.1
ca operator ops --role operator
# Two dom0s on the rig's segment (two-hosts.sh).
ca host host-a --ip 10.99.0.11
ca host host-b --ip 10.99.0.12
cp deploy/policy.toml "$STAGE/root/palm/policy.toml"
{ cat "$CACHE/dom0.cpio.zst"; (cd "$STAGE" && find . | cpio -o -H newc 2>/dev/null | zstd -q -T0); } > "$OUT"
