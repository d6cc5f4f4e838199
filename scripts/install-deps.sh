#!/usr/bin/env bash
# Installs every Debian package palm's build, demo and tests need. Idempotent: a second run
# installs nothing and takes a second. Run as root (or with sudo available).
set -euo pipefail

PACKAGES=(
  build-essential pkg-config
  libssl-dev openssl            # TLS 1.3, ECDSA, digests; the `openssl` CLI runs the cluster CA
  libsystemd-dev systemd        # sd_notify, journald; systemd-analyze for unit checks
  libxen-dev                    # libxenctrl, libxenforeignmemory (the Xen driver)
  libsqlite3-dev sqlite3        # the coordinator's state (one coordinator, embedded)
  libpq-dev                     # the coordinator's state shared by two or more (PostgreSQL client)
  postgresql postgresql-client  # the tests' private PostgreSQL cluster (initdb/pg_ctl, psql)
  liblz4-dev libzstd-dev        # MEMORY batch compression (lz4, zstd)
  libcurl4-openssl-dev          # FoundationNetworking, linked statically with the metrics endpoint's HTTP server
  iproute2                      # network namespaces for multi-host tests
  util-linux                    # unshare, for private mount namespaces in tests
  curl                          # the metrics tests scrape /metrics as Prometheus would
  libtss2-dev                   # tpm2-tss: ESAPI, the TCTI loader, marshalling (TPM attestation)
  libtss2-tcti-device0 libtss2-tcti-swtpm0   # TCTIs: /dev/tpmrm0 on hosts, swtpm in tests
  swtpm swtpm-tools             # the tests' software TPMs (swtpm_setup: EK certificates from a local CA)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
