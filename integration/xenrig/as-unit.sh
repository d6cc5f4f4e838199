#!/bin/bash
# Runs a command in the rig's dom0 with what a systemd unit of deploy/ grants its service, read
# from the unit file itself (so the job checks the units as they are): the user (User=, root when
# absent), the capability bounding set (CapabilityBoundingSet=; no inheritable or ambient
# capabilities), NoNewPrivileges=, and the device access of DevicePolicy=closed + DeviceAllow= —
# emulated by a private /dev that holds only the allowed nodes and the pseudo devices systemd's
# "closed" policy keeps (null, zero, full, random, urandom, tty, ptmx, pts; the fd/stdin/stdout/stderr
# links, as systemd's private /dev has them — Xen's hotplug scripts lock through /dev/stdin), plus /dev/shm when the
# unit lists it in ReadWritePaths=. dom0 has no systemd; this is the part of a unit that decides
# whether the agent can do its work at all.
#   as-unit.sh UNIT_FILE COMMAND [ARG…]
# With AS_UNIT_STAMP=FILE, the wall clock (date +%s.%N) is written to FILE just before the exec
# into COMMAND: this shell emulation of the sandbox costs seconds under TCG (dozens of forks),
# where systemd builds it natively before a unit's process starts, so timings start there.
set -euo pipefail
UNIT=$1; shift
field() { sed -n "s/^$1=//p" "$UNIT"; }
USER_NAME=$(field User | tail -1); USER_NAME=${USER_NAME:-root}
CAPS=$(field CapabilityBoundingSet | tr ' ' '\n' | sed -n 's/^CAP_\(.*\)/+\L\1/p' | paste -sd, -)
NNP=(); [ "$(field NoNewPrivileges | tail -1)" = yes ] && NNP=(--no-new-privs)
if [ "$(field DevicePolicy | tail -1)" = closed ]; then
  # Device classes: block-loop is every loop device node that exists when the agent starts.
  ALLOWED=$(field DeviceAllow | awk '{print $1}' | while read -r d; do
    case "$d" in block-loop) ls /dev/loop[0-9]* 2>/dev/null;; /dev/*) echo "$d";; esac; done | tr '\n' ' ')
  SHM=$(field ReadWritePaths | tr ' ' '\n' | grep -qx -- '-\?/dev/shm' && echo yes || echo no)
  exec unshare --mount --propagation private /bin/bash -c '
    set -e
    mkdir -p /run/as-unit-dev && mount --bind /dev /run/as-unit-dev
    mount -t tmpfs -o mode=0755,nosuid as-unit-dev /dev
    bindnode() { mkdir -p "$(dirname "$1")"; touch "$1"; mount --bind "/run/as-unit-dev/${1#/dev/}" "$1"; }
    for d in null zero full random urandom tty ptmx; do bindnode /dev/$d; done
    ln -s /proc/self/fd /dev/fd; ln -s /proc/self/fd/0 /dev/stdin; ln -s /proc/self/fd/1 /dev/stdout; ln -s /proc/self/fd/2 /dev/stderr
    mkdir -p /dev/pts && mount --bind /run/as-unit-dev/pts /dev/pts
    for d in '"$ALLOWED"'; do [ -e "/run/as-unit-dev/${d#/dev/}" ] && bindnode "$d"; done
    if [ '"$SHM"' = yes ]; then mkdir -p /dev/shm && mount --bind /run/as-unit-dev/shm /dev/shm; fi
    umount -l /run/as-unit-dev
    [ -z "${AS_UNIT_STAMP:-}" ] || date +%s.%N > "$AS_UNIT_STAMP"
    exec setpriv --reuid '"$USER_NAME"' --regid '"$USER_NAME"' --init-groups --inh-caps -all --ambient-caps -all \
      --bounding-set -all,'"$CAPS"' '"${NNP[*]}"' -- "$@"' as-unit "$@"
fi
[ -z "${AS_UNIT_STAMP:-}" ] || date +%s.%N > "$AS_UNIT_STAMP"
exec setpriv --reuid "$USER_NAME" --regid "$USER_NAME" --init-groups --inh-caps -all --ambient-caps -all \
  --bounding-set "-all,$CAPS" "${NNP[@]}" -- "$@"
