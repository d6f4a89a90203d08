#!/usr/bin/env python3
"""A user-space IPIP decapsulator for a TUN-mode real server in the tests.

This kernel has no ipip module, so a real server cannot terminate rvsd's
IP-in-IP tunnel itself. This helper reads every IPIP datagram (IP protocol 4)
with a raw socket, strips the outer IPv4 header and writes the inner datagram
to a tun interface, where the kernel receives it as if it had arrived
decapsulated (the VIP sits on lo, as on any LVS-TUN real server).

    ipip_decap.py [TUN_NAME]
"""
import fcntl
import os
import socket
import struct
import subprocess
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

name = sys.argv[1] if len(sys.argv) > 1 else "ipip0"
tun = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
subprocess.run(["ip", "link", "set", name, "up"], check=True)
for key in ("all", name):
    subprocess.run(["sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=0"], check=True)
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
print("ready", flush=True)
while True:
    outer = raw.recv(65535)
    ihl = (outer[0] & 0x0F) * 4
    inner = outer[ihl:]
    if len(inner) >= 20 and inner[0] >> 4 == 4:
        os.write(tun, inner)
