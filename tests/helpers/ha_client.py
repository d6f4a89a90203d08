#!/usr/bin/env python3
"""Long-lived TCP connections across a director failover, for the tests.

Opens BUSY + IDLE connections to HOST:PORT (a line-echo service whose servers
prefix each answer with their name). Every connection first exchanges three
lines (enough for the master to sync it). Prints "ready" once all have.
Busy connections then exchange a line every 0.1 s; idle ones stay silent.
On "finish" from stdin, busy connections stop after their next exchange and
each idle one exchanges one more line; then a JSON summary is printed:
ok (connections that never failed), failures (one reason each: reset,
timeout, another server answered, bad echo), max_gap (the longest wait, in
seconds, between two answers on a busy connection: the failover gap) and
exchanges.

    ha_client.py HOST PORT BUSY IDLE
"""
import json
import socket
import sys
import threading
import time

host, port, busy, idle = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
finish = threading.Event()
lock = threading.Lock()
failures = []
gaps = []
counts = []


def exchange(f, n, server):
    msg = f"line {n}\n".encode()
    f.write(msg)
    f.flush()
    reply = f.readline()
    if not reply:
        raise RuntimeError("closed")
    who, _, echoed = reply.partition(b" ")
    if echoed != msg:
        raise RuntimeError(f"bad echo {reply!r}")
    if server is not None and who != server:
        raise RuntimeError(f"answered by {who!r}, not {server!r}")
    return who


def run(i, is_busy, ready):
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.settimeout(20)
        f = s.makefile("rwb")
        server = None
        for n in range(3):
            server = exchange(f, n, server)
        ready.release()
        n = 3
        if is_busy:
            last = time.monotonic()
            gap = 0.0
            while True:
                done = finish.is_set()
                exchange(f, n, server)
                now = time.monotonic()
                gap = max(gap, now - last)
                last = now
                n += 1
                if done:
                    break
                time.sleep(0.1)
            with lock:
                gaps.append(gap)
        else:
            finish.wait()
            exchange(f, n, server)
            n += 1
        with lock:
            counts.append(n)
        s.close()
    except Exception as e:  # noqa: BLE001 - reported in the summary
        ready.release()
        with lock:
            failures.append(f"conn {i} ({'busy' if is_busy else 'idle'}): {type(e).__name__}: {e}")


ready = threading.Semaphore(0)
threads = [threading.Thread(target=run, args=(i, i < busy, ready)) for i in range(busy + idle)]
for t in threads:
    t.start()
    time.sleep(0.005)
for _ in threads:
    ready.acquire()
print("ready", flush=True)
sys.stdin.readline()
finish.set()
for t in threads:
    t.join()
print(json.dumps({"ok": len(counts), "failures": failures, "max_gap": round(max(gaps, default=0.0), 3),
                  "exchanges": sum(counts)}), flush=True)
