#!/usr/bin/env bash
# Sends Xen debug keys to the rig that integration/xenrig/run.sh is running, through its serial
# console socket, and prints what Xen answered. Example: xen-keys.sh q d   (domains, then the
# registers and stacks of every CPU). Keys: see Xen's "h".
#   xen-keys.sh --dom0 'ps; xl list'   runs commands in the shell job.sh leaves on dom0's console
set -euo pipefail
cd "$(dirname "$0")/../.."
SOCK=${XENRIG_SERIAL:-${XENRIG_CACHE:-/var/cache/palm/xenrig}/serial.sock}   # where run.sh puts it
[ -S "$SOCK" ] || { echo "xen-keys: no running rig ($SOCK missing)" >&2; exit 1; }
python3 - "$SOCK" "$@" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.settimeout(0.5)
def drain(seconds):
    end = time.time() + seconds
    out = b""
    while time.time() < end:
        try:
            chunk = s.recv(65536)
            if not chunk: break
            out += chunk
        except socket.timeout:
            pass
    return out
if sys.argv[2:3] == ["--dom0"]:
    s.sendall((" ".join(sys.argv[3:]) + "\n").encode())
    sys.stdout.write(drain(20).decode(errors="replace"))
    sys.exit(0)
# Three Ctrl-A switch the console's input to Xen; three more give it back to dom0.
s.sendall(b"\x01\x01\x01")
drain(1)
for key in sys.argv[2:]:
    s.sendall(key.encode())
    sys.stdout.write(drain(5).decode(errors="replace"))
s.sendall(b"\x01\x01\x01")
drain(1)
PY
