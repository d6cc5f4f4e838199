#!/usr/bin/env python3
"""Drives one QEMU live migration over QMP and prints QEMU's own report (query-migrate) as JSON.

    qmp_migrate.py SOURCE_QMP_SOCKET DEST_QMP_SOCKET PORT CHANNELS

Both QEMUs were started with a tls-creds-x509 object named tls0 (mutual x509); CHANNELS > 1
turns on multifd with that many channels. No bandwidth cap; QEMU's default 300 ms downtime
limit is lowered to palm's 100 ms target.
"""
import json
import socket
import sys
import time


def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    f = s.makefile("rw")
    json.loads(f.readline())
    command(f, "qmp_capabilities")
    return f


def command(f, name, **arguments):
    f.write(json.dumps({"execute": name, "arguments": arguments}) + "\n")
    f.flush()
    while True:
        reply = json.loads(f.readline())
        if "error" in reply:
            sys.exit(f"{name}: {reply['error']}")
        if "return" in reply:
            return reply["return"]


source, dest = connect(sys.argv[1]), connect(sys.argv[2])
port, channels = sys.argv[3], int(sys.argv[4])
for f in (source, dest):
    if channels > 1:
        command(f, "migrate-set-capabilities", capabilities=[{"capability": "multifd", "state": True}])
        command(f, "migrate-set-parameters", **{"multifd-channels": channels})
    command(f, "migrate-set-parameters", **{"tls-creds": "tls0", "max-bandwidth": 100 << 30, "downtime-limit": 100})
command(dest, "migrate-incoming", uri=f"tcp:127.0.0.1:{port}")
command(source, "migrate", uri=f"tcp:127.0.0.1:{port}")
while True:
    report = command(source, "query-migrate")
    if report.get("status") in ("completed", "failed", "cancelled"):
        break
    time.sleep(0.02)
print(json.dumps(report))
sys.exit(0 if report.get("status") == "completed" else 1)
