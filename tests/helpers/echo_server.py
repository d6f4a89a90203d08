#!/usr/bin/env python3
"""Echo server for the end-to-end tests: answers every TCP line or UDP
datagram with "NAME <what it got>", so the client knows which real server
answered.

    echo_server.py NAME PORT tcp|udp
"""
import socket
import socketserver
import sys

name, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]


class Lines(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(f"{name} ".encode() + line)
            self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if proto == "tcp":
    Server(("0.0.0.0", port), Lines).serve_forever()
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(f"{name} ".encode() + data, peer)
