#!/usr/bin/env bash
# The Xen integration as CI runs it: the one-dom0 rig (integration/xenrig/run.sh), then the two-host
# rig (integration/xenrig/two-hosts.sh). Each is retried at most twice when a run failed because of
# the emulation (exit 3: QEMU/Xen/dom0 died, the guest did not boot, or the guest kernel faulted
# with its memory intact). A palm failure (exit 1) is never retried.
set -uo pipefail
cd "$(dirname "$0")/../.."
rig() {  # SCRIPT NAME
  local attempt rc
  for attempt in 1 2 3; do
    "$1"
    rc=$?
    case $rc in
      0) return 0 ;;
      3) echo "$2: attempt $attempt failed because of the emulation (above)"
         [ $attempt -lt 3 ] && echo "$2: retrying" ;;
      *) echo "$2: palm failed (exit $rc); not retried"; return $rc ;;
    esac
  done
  echo "$2: the emulation failed three times; giving up"
  return 1
}
rig integration/xenrig/run.sh "xen integration" || exit $?
rig integration/xenrig/two-hosts.sh "two-host xen integration" || exit $?
