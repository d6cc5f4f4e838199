#!/usr/bin/env bash
# The Xen integration as CI runs it: integration/xenrig/run.sh, retried at most twice when a run
# failed because of the emulation (run.sh exit 3: QEMU/Xen/dom0 died, the guest did not boot, or
# the guest kernel faulted with its memory intact). A palm failure (exit 1) is never retried.
set -uo pipefail
cd "$(dirname "$0")/../.."
for attempt in 1 2 3; do
  integration/xenrig/run.sh
  rc=$?
  case $rc in
    0) exit 0 ;;
    3) echo "xen integration: attempt $attempt failed because of the emulation (above)"
       [ $attempt -lt 3 ] && echo "xen integration: retrying" ;;
    *) echo "xen integration: palm failed (exit $rc); not retried"; exit $rc ;;
  esac
done
echo "xen integration: the emulation failed three times; giving up"
exit 1
