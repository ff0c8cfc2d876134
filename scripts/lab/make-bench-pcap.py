#!/usr/bin/env python3
"""Build a large replay capture from small Ethernet lab captures (stdlib only).

    make-bench-pcap.py OUT.pcap COPIES [--spacing SECONDS] CAPTURE.pcap...

The inputs are laid end to end; copy k of that sequence gets its IPv4 addresses moved to 10.(54 + k//256).(k%256).x
(the last octet is kept, the IPv4 header checksum recomputed) and its
timestamps shifted by k * spacing, and all packets are merged in time order:
COPIES times the inputs' connections, distinct 4-tuples, many open at once.
TCP checksums are left as captured (lab captures carry offloaded, wrong ones).
Only EN10MB (Ethernet) classic pcap inputs; other packets are copied unchanged.
"""
import argparse
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
import pcaputil  # noqa: E402


def ip_checksum(hdr):
    s = 0
    for i in range(0, len(hdr), 2):
        s += (hdr[i] << 8) + hdr[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def rewrite(pkt, k):
    if len(pkt) < 34 or pkt[12:14] != b"\x08\x00":
        return pkt
    b = bytearray(pkt)
    ihl = (b[14] & 15) * 4
    hi, lo = 54 + k // 256, k % 256
    b[26 + 1], b[26 + 2] = hi, lo     # source 10.hi.lo.x
    b[30 + 1], b[30 + 2] = hi, lo     # destination
    b[24:26] = b"\x00\x00"
    b[24:26] = struct.pack(">H", ip_checksum(bytes(b[14:14 + ihl])))
    return bytes(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("copies", type=int)
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--spacing", type=float, default=0.02)
    a = ap.parse_args()
    if not 1 <= a.copies <= 256 * 200:
        ap.error("COPIES must be 1..51200")
    base = []   # the inputs one after the other (no 4-tuple shared by two inputs at once)
    end = 0.0
    for path in a.inputs:
        fmt, pkts = pcaputil.read_packets(path)
        if not pkts or fmt != "pcap" or any(lt != 1 for lt, _, _ in pkts):
            print("skipping %s (not a non-empty Ethernet pcap)" % path, file=sys.stderr)
            continue
        t0 = pkts[0][1]
        base += [(end + ts - t0, p) for _, ts, p in pkts]
        end = base[-1][0] + 0.01
    if not base:
        sys.exit("no usable input")
    out = []
    for k in range(a.copies):
        off = k * a.spacing
        out += [(ts + off, k, i, rewrite(p, k)) for i, (ts, p) in enumerate(base)]
    out.sort(key=lambda x: (x[0], x[1], x[2]))
    start = 1_700_000_000
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for ts, _, _, p in out:
            us = int(round(ts * 1e6))
            f.write(struct.pack("<IIII", start + us // 1000000, us % 1000000, len(p), len(p)))
            f.write(p)
    print("%s: %d packets, %d bytes, %d copies of %d packets" % (
        a.out, len(out), os.path.getsize(a.out), a.copies, len(base)))


if __name__ == "__main__":
    main()
