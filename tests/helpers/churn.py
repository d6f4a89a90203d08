#!/usr/bin/env python3
"""Both ends of tests/netns_churn.rs.

    churn.py serve NAME PORT
        Accepts TCP connections one after another; sends NAME and closes
        first, so the client can reuse its port at once.

    churn.py client ADDR PORT SRC FIRST_PORT NPORTS SECONDS
        Connects to ADDR:PORT from SRC, cycling its source port through
        FIRST_PORT .. FIRST_PORT+NPORTS-1, for SECONDS; reads the server's
        name, closes (a port still closing is skipped; a read that stalls 2 s
        is counted and given up). Prints one JSON line: the number of
        connections, the failures (of connect, bind or a read), the longest connect and every one of 0.5 s or more (seconds,
        the client's own clock), the
        servers that answered, and this namespace's TCPSynRetrans and
        RetransSegs counters over the run.
"""
import errno
import json
import socket
import sys
import time


def counters():
    """(TcpExt TCPSynRetrans, Tcp RetransSegs) of this network namespace."""
    def table(path, prefix):
        lines = [l.split() for l in open(path) if l.startswith(prefix)]
        return dict(zip(lines[0][1:], map(int, lines[1][1:])))
    ext = table("/proc/net/netstat", "TcpExt:")
    tcp = table("/proc/net/snmp", "Tcp:")
    return ext.get("TCPSynRetrans", 0), tcp.get("RetransSegs", 0)


def serve(name, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(128)
    while True:
        c, _ = s.accept()
        try:
            c.sendall(name.encode())
        except OSError:
            pass
        c.close()


def client(addr, port, src, first, nports, seconds):
    syn0, retrans0 = counters()
    times, failures, servers = [], [], {}
    busy = stalled = 0
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        sport = first + i % nports
        i += 1
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.settimeout(5)
        try:
            s.bind((src, sport))
            t0 = time.monotonic()
            try:
                s.connect((addr, port))
            except OSError as e:
                # The previous connection on this port is still closing (its
                # FIN not yet acknowledged): no SYN was sent; try the next port.
                if e.errno in (errno.EADDRNOTAVAIL, errno.EADDRINUSE):
                    busy += 1
                    time.sleep(0.001)
                    continue
                raise
            times.append(round(time.monotonic() - t0, 4))
            # Packets of an established connection to a server deleted
            # meanwhile are dropped until it is back (expire_nodest_conn = 0):
            # such a read may stall; it is counted, not judged.
            s.settimeout(2)
            name = b""
            try:
                while True:
                    b = s.recv(64)
                    if not b:
                        break
                    name += b
                servers[name.decode()] = servers.get(name.decode(), 0) + 1
            except socket.timeout:
                stalled += 1
        except OSError as e:
            failures.append(f"port {sport}: {e}")
        finally:
            s.close()
    syn1, retrans1 = counters()
    print(json.dumps({
        "connections": len(times),
        "failures": failures,
        "busy_ports": busy,
        "stalled_reads": stalled,
        "max_connect": max(times, default=0),
        "slow_connects": [t for t in times if t >= 0.5],
        "servers": servers,
        "syn_retrans": syn1 - syn0,
        "retrans_segs": retrans1 - retrans0,
    }), flush=True)


if sys.argv[1] == "serve":
    serve(sys.argv[2], int(sys.argv[3]))
else:
    a = sys.argv[2:]
    client(a[0], int(a[1]), a[2], int(a[3]), int(a[4]), float(a[5]))
