"""Frame injector and capturer for tests/lvs_reuse.rs, run inside a network
namespace: sends raw Ethernet frames on one interface and reports the frames
that arrive on another.

    inject.py TX_IFACE RX_IFACE

Reads commands from stdin, one a line:
    tx HEX        send the frame; answers "ok"
    rx QUIET_MS   print every frame received since the last rx, one hex line
                  each, until QUIET_MS pass without one (3 s at most); then "end"
"""
import select
import socket
import sys
import time

ETH_P_ALL = 3

tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
tx.bind((sys.argv[1], 0))
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
rx.bind((sys.argv[2], 0))
print("ready", flush=True)

for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "tx":
        tx.send(bytes.fromhex(arg))
        print("ok", flush=True)
    elif cmd == "rx":
        quiet = int(arg) / 1000
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            ready, _, _ = select.select([rx], [], [], quiet)
            if not ready:
                break
            data, addr = rx.recvfrom(65535)
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            print(data.hex())
        print("end", flush=True)
