#!/usr/bin/env python3
"""A long-lived TCP client for the end-to-end tests: one connection that
exchanges a line every INTERVAL seconds for SECONDS, then prints
"server=NAME exchanged=N" (NAME: who answered every line) and exits 0, or
prints the failure and exits 1 (reset, stall, a different server, bad echo).
Prints "connected server=NAME" once the first answer arrived.

    stream_client.py HOST PORT SECONDS [INTERVAL=0.05]
"""
import socket
import sys
import time

host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.05
s = socket.create_connection((host, port), timeout=5)
f = s.makefile("rwb")
server = None
n = 0
end = time.time() + seconds
try:
    while time.time() < end:
        msg = f"line {n}\n".encode()
        f.write(msg)
        f.flush()
        reply = f.readline()
        if not reply:
            raise RuntimeError("connection closed")
        who, _, echoed = reply.partition(b" ")
        if echoed != msg:
            raise RuntimeError(f"bad echo {reply!r}")
        who = who.decode()
        if server is None:
            server = who
            print(f"connected server={who}", flush=True)
        elif who != server:
            raise RuntimeError(f"answered by {who}, not {server}")
        n += 1
        time.sleep(interval)
except Exception as e:  # noqa: BLE001 - the test reads the reason
    print(f"failed after {n}: {e}", flush=True)
    sys.exit(1)
print(f"server={server} exchanged={n}", flush=True)
