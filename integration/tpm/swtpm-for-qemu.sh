#!/usr/bin/env bash
# A TPM 2.0 for a QEMU VM of the integration jobs: swtpm, manufactured here with an EK certificate
# from a local CA made for the run (the "TPM manufacturer" whose root a coordinator may trust:
# DIR/ca/swtpm-localca-rootca-cert.pem and DIR/ca/issuercert.pem), served on DIR/swtpm.sock for
#   -chardev socket,id=chrtpm,path=DIR/swtpm.sock -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0
# It ends when QEMU disconnects (--terminate); its pid is in DIR/swtpm.pid, its log in DIR/swtpm.log.
#   integration/tpm/swtpm-for-qemu.sh DIR
set -euo pipefail
DIR=${1:?usage: swtpm-for-qemu.sh DIR}
mkdir -p "$DIR/state" "$DIR/ca"
DIR=$(cd "$DIR" && pwd)   # swtpm --daemon leaves the working directory: every path absolute
printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' \
  "$DIR/ca" "$DIR/ca" "$DIR/ca" "$DIR/ca" > "$DIR/localca.conf"
printf 'create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = /etc/swtpm-localca.options\nactive_pcr_banks = sha256\n' \
  "$DIR/localca.conf" > "$DIR/setup.conf"
swtpm_setup --tpm2 --tpmstate "$DIR/state" --create-ek-cert --lock-nvram --overwrite --config "$DIR/setup.conf" > "$DIR/setup.log" 2>&1 \
  || { cat "$DIR/setup.log"; exit 1; }
swtpm socket --tpm2 --tpmstate dir="$DIR/state" --ctrl type=unixio,path="$DIR/swtpm.sock" --flags startup-clear \
  --terminate --daemon --log file="$DIR/swtpm.log" --pid file="$DIR/swtpm.pid"
