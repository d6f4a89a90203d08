#!/usr/bin/env python3
"""Helper of scripts/bench (standard library only).

  bench_gen.py pcaps DIR FLOWS
      Writes the bench inputs for FLOWS concurrent TCP flows into DIR (classic
      pcap, 60-byte frames = 64 bytes on the wire with the FCS):
        est.pcap    one ACK per flow, client -> VIP:80      (DR, TUN, NAT in; testpmd)
        reply.pcap  one ACK per flow, real server 1:80 -> client (NAT out)
        syn.pcap    one SYN per flow, client -> VIP:80, to p2's MAC (opens the NAT-out connections)
        new.pcap    one SYN per flow, then one FIN|ACK per flow (new connections)
  bench_gen.py spread DIR FLOWS
      The 2-worker (scaling) inputs: one ACK per flow from one client address
      per flow: spread.pcap (all), spread-owner{0,1}.pcap (split by the worker
      rvsd gives the client to), spread-alt{0,1}.pcap (split alternately).
  bench_gen.py measure --sock S --pid P --out-port N [--setup PORT:COUNT] ...
      Reads port counters over DPDK telemetry (/ethdev/stats) from the process'
      socket: waits for traffic (and for a one-shot setup port to be consumed),
      warms up, then samples twice `duration` seconds apart. Prints one JSON line.
  bench_gen.py report RESULTS.jsonl JSON_OUT
      Prints the table and writes the JSON document.
"""
import json
import os
import socket
import struct
import sys
import time

# Addresses shared with the rvsd configs that scripts/bench writes.
P0_MAC = bytes([2, 0, 0, 0, 0, 1])
P2_MAC = bytes([2, 0, 0, 0, 0, 3])  # the one-shot setup port of the NAT-out run
GW_MAC = bytes([2, 0, 0, 0, 0xFE, 1])
RS1_MAC = bytes([2, 0, 0, 0, 2, 11])
VIP = bytes([10, 0, 0, 100])
RS1 = bytes([10, 0, 2, 11])
CLIENT_BASE = (198 << 24) | (18 << 16)  # 198.18.0.0/15, the benchmarking range
FRAME_LEN = 60

SYN, FIN, ACK = 0x02, 0x01, 0x10


def client(i):
    """Flow i's client endpoint: 1024 ports per address (as dataplane/benches/lb.rs)."""
    return CLIENT_BASE + (i >> 10), 1024 + (i & 1023)


def fold(s):
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def words(b):
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


class Template:
    """A 60-byte Ethernet/IPv4/TCP frame where only one address and one port vary.

    The checksums are linear in 16-bit words, so each frame's checksums are the
    template's partial sums plus the varying words (fast enough for 2M frames).
    """

    def __init__(self, eth_dst, eth_src, src, dst, sport, dport, flags, vary_src):
        self.vary_src = vary_src  # True: source address/port vary; False: destination
        self.eth = eth_dst + eth_src + b"\x08\x00"
        self.src, self.dst, self.sport, self.dport, self.flags = src, dst, sport, dport, flags
        ip_fixed = struct.pack("!BBHHHBBH", 0x45, 0, 40, 0, 0x4000, 64, 6, 0)
        self.ip_sum = words(ip_fixed) + words(dst if vary_src else src)
        tcp_fixed = struct.pack("!HHIIBBHHH", 0, 0, 1000, 1 if flags & ACK else 0, 5 << 4, flags, 64240, 0, 0)
        # Pseudo-header: fixed address + protocol + TCP length; plus the fixed TCP words
        # and the fixed port.
        fixed_addr = dst if vary_src else src
        fixed_port = dport if vary_src else sport
        self.tcp_sum = words(fixed_addr) + 6 + 20 + words(tcp_fixed) + fixed_port

    def frame(self, addr, port):
        a = struct.pack("!I", addr)
        ip_ck = 0xFFFF - fold(self.ip_sum + (addr >> 16) + (addr & 0xFFFF))
        tcp_ck = 0xFFFF - fold(self.tcp_sum + (addr >> 16) + (addr & 0xFFFF) + port)
        if self.vary_src:
            src, dst, sport, dport = a, self.dst, port, self.dport
        else:
            src, dst, sport, dport = self.src, a, self.sport, port
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0x4000, 64, 6, ip_ck, src, dst)
        tcp = struct.pack(
            "!HHIIBBHHH", sport, dport, 1000, 1 if self.flags & ACK else 0, 5 << 4, self.flags, 64240, tcp_ck, 0
        )
        f = self.eth + ip + tcp
        return f + b"\0" * (FRAME_LEN - len(f))


def write_pcap(path, frames):
    rec = struct.Struct("<IIII")
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        n = 0
        for fr in frames:
            f.write(rec.pack(1_700_000_000 + n // 1_000_000, n % 1_000_000, len(fr), len(fr)))
            f.write(fr)
            n += 1
    os.replace(path + ".tmp", path)
    return n


def gen_pcaps(d, flows):
    os.makedirs(d, exist_ok=True)
    cin = lambda flags: Template(P0_MAC, GW_MAC, None, VIP, None, 80, flags, True)
    est, syn, fin = cin(ACK), cin(SYN), cin(FIN | ACK)
    reply = Template(P0_MAC, RS1_MAC, RS1, None, 80, None, ACK, False)
    counts = {}
    counts["est"] = write_pcap(os.path.join(d, "est.pcap"), (est.frame(*client(i)) for i in range(flows)))
    counts["reply"] = write_pcap(os.path.join(d, "reply.pcap"), (reply.frame(*client(i)) for i in range(flows)))
    syn2 = Template(P2_MAC, GW_MAC, None, VIP, None, 80, SYN, True)
    counts["syn"] = write_pcap(os.path.join(d, "syn.pcap"), (syn2.frame(*client(i)) for i in range(flows)))

    def new():
        for i in range(flows):
            yield syn.frame(*client(i))
        for i in range(flows):
            yield fin.frame(*client(i))

    counts["new"] = write_pcap(os.path.join(d, "new.pcap"), new())
    print(json.dumps(counts))


def spread_client(i):
    """Flow i's client endpoint for the scaling runs: one address per flow (up to
    the 131,072 of 198.18.0.0/15, then the next port), so flows spread over
    workers. rvsd gives each client address to one worker (owner_prefix 32)."""
    return CLIENT_BASE + (i % 131072), 1024 + i // 131072


def owner_of(addr, workers, prefix=32):
    """rvsd's flow owner (dataplane/src/lb/owner.rs owner_of): a hash of the client
    address masked to `prefix`, scaled to the worker count."""
    mask = 0 if prefix == 0 else (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    h = ((addr & mask) * 0x9E3779B1) & 0xFFFFFFFF
    return (h * workers) >> 32


def gen_spread(d, flows):
    """Established-flow pcaps for the 2-worker runs: all flows in one file (one
    queue), split by owner over two files (each queue carries only its
    worker's flows, as a NIC steering by client address would), and split
    alternately (half of each queue's packets belong to the other worker and
    are handed over)."""
    os.makedirs(d, exist_ok=True)
    est = Template(P0_MAC, GW_MAC, None, VIP, None, 80, ACK, True)
    frames = [est.frame(*spread_client(i)) for i in range(flows)]
    owners = [owner_of(spread_client(i)[0], 2) for i in range(flows)]
    counts = {"spread": write_pcap(os.path.join(d, "spread.pcap"), frames)}
    for q in (0, 1):
        counts["owner%d" % q] = write_pcap(
            os.path.join(d, "spread-owner%d.pcap" % q), (f for f, o in zip(frames, owners) if o == q))
        counts["alt%d" % q] = write_pcap(os.path.join(d, "spread-alt%d.pcap" % q), frames[q::2])
    print(json.dumps(counts))


# ---------------------------------------------------------------- telemetry


class Telemetry:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.settimeout(5)
        self.s.connect(path)
        hello = json.loads(self.s.recv(65536).decode())
        self.max_len = int(hello.get("max_output_len", 16384))

    def cmd(self, c):
        self.s.send(c.encode())
        return json.loads(self.s.recv(max(self.max_len, 65536)).decode())

    def stats(self, port):
        return self.cmd("/ethdev/stats,%d" % port)["/ethdev/stats"]

    def ports(self):
        return self.cmd("/ethdev/list")["/ethdev/list"]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0): look at its state.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def real_pid(pid):
    """The process itself when `pid` is a wrapper (taskset execs; timeout forks)."""
    try:
        for _ in range(3):
            comm = open("/proc/%d/comm" % pid).read().strip()
            if comm != "timeout":
                return pid
            kids = open("/proc/%d/task/%d/children" % (pid, pid)).read().split()
            if not kids:
                return pid
            pid = int(kids[0])
    except OSError:
        pass
    return pid


def thread_cpu_ns(pid):
    """On-CPU nanoseconds of each thread (schedstat: steal and other tasks excluded)."""
    out = {}
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                out[tid] = int(open("/proc/%d/task/%s/schedstat" % (pid, tid)).read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        pass
    return out


def measure(args):
    import argparse

    ap = argparse.ArgumentParser(prog="bench_gen.py measure")
    ap.add_argument("--sock", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--in-port", type=int, default=0)
    ap.add_argument("--out-port", type=int, default=1)
    ap.add_argument("--setup", default=None, help="PORT:COUNT, a one-shot port to wait for")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--window", type=float, default=1.0)
    ap.add_argument("--start-timeout", type=float, default=180.0)
    ap.add_argument("--lcores", type=int, default=1, help="forwarding lcores (CPU time of the N busiest threads)")
    a = ap.parse_args(args)

    def fail(msg):
        print(json.dumps({"error": msg}))
        sys.exit(1)

    t_start = time.monotonic()
    tel = None
    while tel is None:
        if not alive(a.pid):
            fail("process exited before its telemetry socket answered")
        if time.monotonic() - t_start > a.start_timeout:
            fail("no telemetry socket after %.0f s" % a.start_timeout)
        try:
            tel = Telemetry(a.sock)
        except OSError:
            time.sleep(0.2)
    # Traffic flowing out?
    while True:
        if not alive(a.pid):
            fail("process exited before forwarding")
        try:
            if tel.stats(a.out_port)["opackets"] > 0:
                break
        except (OSError, KeyError, ValueError):
            pass
        if time.monotonic() - t_start > a.start_timeout:
            fail("nothing forwarded after %.0f s" % a.start_timeout)
        time.sleep(0.1)
    if a.setup:
        sp, cnt = (int(x) for x in a.setup.split(":"))
        while tel.stats(sp)["ipackets"] < cnt:
            if time.monotonic() - t_start > a.start_timeout:
                fail("setup port %d read %d of %d packets" % (sp, tel.stats(sp)["ipackets"], cnt))
            time.sleep(0.05)
    time.sleep(a.warmup)

    proc = real_pid(a.pid)

    def sample():
        t0 = time.monotonic()
        i, o = tel.stats(a.in_port), tel.stats(a.out_port)
        t1 = time.monotonic()
        return (t0 + t1) / 2, i, o, thread_cpu_ns(proc)

    # Windows of `window` seconds over the interval: this machine may be shared,
    # so the best window is the figure least disturbed by other load.
    samples = [sample()]
    n = max(1, int(round(a.duration / a.window)))
    for k in range(1, n + 1):
        time.sleep(max(0.0, samples[0][0] + k * a.duration / n - time.monotonic()))
        samples.append(sample())
    if not alive(a.pid):
        fail("process exited during the measurement")

    def rate(x, y, port, key):
        return (y[port][key] - x[port][key]) / (y[0] - x[0])

    win_tx = [rate(x, y, 2, "opackets") for x, y in zip(samples, samples[1:])]
    win_rx = [rate(x, y, 1, "ipackets") for x, y in zip(samples, samples[1:])]
    first, last = samples[0], samples[-1]
    best = max(range(len(win_tx)), key=lambda k: win_tx[k])
    # The forwarding lcores: the threads that ran most over the interval.
    busy = {t: last[3][t] - first[3].get(t, 0) for t in last[3]}
    lcore_ns = sum(sorted(busy.values(), reverse=True)[: a.lcores])
    wall = last[0] - first[0]
    res = {
        "interval_s": round(last[0] - first[0], 3),
        "windows": len(win_tx),
        "tx_pps": win_tx[best],
        "rx_pps": win_rx[best],
        "tx_pps_mean": rate(first, last, 2, "opackets"),
        "rx_pps_mean": rate(first, last, 1, "ipackets"),
        "tx_pps_median": sorted(win_tx)[len(win_tx) // 2],
        "tx_pps_windows": [round(x) for x in win_tx],
        # Packets per second of the forwarding thread's own CPU time: what the
        # core would do if nothing else ran on it (robust to a shared machine).
        "lcore_cpu_share": round(lcore_ns / 1e9 / wall, 3) if wall > 0 else None,
        "tx_pps_per_cpu_s": (last[2]["opackets"] - first[2]["opackets"]) / (lcore_ns / 1e9) if lcore_ns else None,
        "rx_nombuf": last[1].get("rx_nombuf", 0) - first[1].get("rx_nombuf", 0),
        "imissed": last[1].get("imissed", 0) - first[1].get("imissed", 0),
        "oerrors": last[2].get("oerrors", 0) - first[2].get("oerrors", 0),
    }
    print(json.dumps(res))


# ---------------------------------------------------------------- report


def report(results_path, json_out, meta_path):
    rows = [json.loads(l) for l in open(results_path) if l.strip()]
    meta = json.load(open(meta_path)) if meta_path and os.path.exists(meta_path) else {}
    ref = {r["flows"]: r for r in rows if r["case"] == "testpmd-macswap" and r.get("mpps")}
    one = {r["flows"]: r for r in rows if r["case"] == "rvsd-dr-spread" and r.get("mpps")}
    for r in rows:
        # Scaling: a 2-worker run against the 1-worker run on the same flows.
        b = one.get(r["flows"], {})
        if r["case"].startswith("rvsd-dr-2w") and r.get("mpps") and b.get("mpps"):
            r["x_one_worker"] = round(r["mpps"] / b["mpps"], 3)
            r["note"] = (r.get("note", "") + "; " if r.get("note") else "") + "%.2fx one worker" % r["x_one_worker"]
    for r in rows:
        b = ref.get(r["flows"], {})
        for key, out in (("mpps", "ratio_macswap"), ("mpps_per_cpu_s", "ratio_macswap_per_cpu_s")):
            x, y = r.get(key), b.get(key)
            r[out] = round(x / y, 3) if x and y else None
    hdr = ("case", "flows", "Mpps", "mean", "x macswap", "cpu-norm", "x macswap", "notes")
    lines = []
    f2 = lambda x: "%.2f" % x if x is not None else "-"
    for r in rows:
        lines.append(
            (
                r["case"],
                r["flows_label"],
                f2(r.get("mpps")),
                f2(r.get("mpps_mean")),
                f2(r.get("ratio_macswap")),
                f2(r.get("mpps_per_cpu_s")),
                f2(r.get("ratio_macswap_per_cpu_s")),
                r.get("note", "") or r.get("error", ""),
            )
        )
    w = [max(len(str(x[i])) for x in [hdr] + lines) for i in range(7)]
    fmt = "%-{}s  %{}s  %{}s  %{}s  %{}s  %{}s  %{}s  %s".format(*w)
    print(fmt % hdr)
    print(fmt % (tuple("-" * n for n in w) + ("-----",)))
    for l in lines:
        print(fmt % l)
    print(
        "Mpps: best %s-s window of packets sent on net_null; mean: over the whole interval; cpu-norm: packets per "
        "second of the forwarding thread's own CPU time (/proc schedstat; excludes other tasks and steal)."
        % meta.get("window_s", 1)
    )
    print()
    for r in rows:
        if r["case"] == "rvsd-new" and r.get("mpps"):
            print(
                "new connections, %s flows: %.2f M conn/s (SYN rate = half the packet rate; "
                "the other half are the FINs that close them)%s"
                % (
                    r["flows_label"],
                    r["conns_per_s"] / 1e6,
                    "; SYN path alone est. %.2f M/s" % (r["syn_only_est"] / 1e6) if r.get("syn_only_est") else "",
                )
            )
    mem = meta.get("memory")
    if mem:
        print(
            "memory per connection: %.1f B (rvsd RSS %d kB with conns_per_worker=%d, %d kB with %d: "
            "growth / %d slots; the table is preallocated, so this is per slot)"
            % (
                mem["bytes_per_conn"],
                mem["rss_big_kb"],
                mem["conns_big"],
                mem["rss_small_kb"],
                mem["conns_small"],
                mem["conns_big"] - mem["conns_small"],
            )
        )
    doc = dict(meta)
    doc["results"] = rows
    with open(json_out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print("JSON: %s" % json_out)


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "pcaps":
        gen_pcaps(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "spread":
        gen_spread(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) >= 2 and sys.argv[1] == "measure":
        measure(sys.argv[2:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
