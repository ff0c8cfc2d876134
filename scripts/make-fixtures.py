#!/usr/bin/env python3
"""Deterministic capture-fixture generator for S2Scope.

Writes
  fixtures/decode/       one capture per link-layer / IP decoding case + NAME.expected.json
  fixtures/reassembly/   TCP reassembly hard cases + NAME.expected.json
and a README.md in each directory.

Only the Python 3.11 standard library is used.  Everything is deterministic:
fixed timestamps (2024-03-01T12:00:00Z based), fixed ISNs, fixed IP IDs, no
randomness.  Rerunning produces byte-identical files.

Usage:
  python3 scripts/make-fixtures.py            # (re)generate fixtures
  python3 scripts/make-fixtures.py --check    # generate, then cross-check with tshark

Expected JSON formats are documented in the READMEs written by this script.
"""

import datetime
import ipaddress
import json
import os
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DECODE_DIR = os.path.join(ROOT, "fixtures", "decode")
REASM_DIR = os.path.join(ROOT, "fixtures", "reassembly")

BASE_SEC = 1709294400  # 2024-03-01T12:00:00Z
XMPP_PORT = 5269

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

LINKTYPES = {"NULL": 0, "EN10MB": 1, "RAW": 101, "LOOP": 108, "LINUX_SLL": 113, "LINUX_SLL2": 276}

# ---------------------------------------------------------------------------
# XMPP server-to-server payloads
# ---------------------------------------------------------------------------

C_HDR = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
         b"xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
         b"to='b.example' from='a.example' version='1.0'>")
S_HDR = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
         b"xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
         b"id='s2s-7f3a9c' from='b.example' to='a.example' version='1.0'>")
S_FEAT = b"<stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>"
C_DB = b"<db:result from='a.example' to='b.example'>abc123</db:result>"
S_DB = b"<db:result from='b.example' to='a.example' type='valid'/>"
C_MSG = b"<message from='u@a.example' to='v@b.example' id='m1' type='chat'><body>hi</body></message>"
S_MSG = b"<message from='v@b.example' to='u@a.example' id='r1' type='chat'><body>hello back</body></message>"
END = b"</stream:stream>"
KEEPALIVE = b" "
S_ERR = (b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
         b"</stream:error></stream:stream>")

# ---------------------------------------------------------------------------
# Packet building
# ---------------------------------------------------------------------------


def is_v6(addr):
    return ":" in addr


def packed(addr):
    return ipaddress.ip_address(addr).packed


def norm_addr(addr):
    """RFC 5952 / dotted-quad text form."""
    return str(ipaddress.ip_address(addr))


def checksum16(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def pseudo_header(src, dst, proto, length):
    if is_v6(src):
        return packed(src) + packed(dst) + struct.pack("!I3xB", length, proto)
    return packed(src) + packed(dst) + struct.pack("!BBH", 0, proto, length)


def tcp_opts_syn(tsval, tsecr=0):
    # Linux order: MSS, SACK_PERM, TS, NOP, WSCALE  (20 bytes)
    return (struct.pack("!BBH", 2, 4, 1460) + b"\x04\x02" + struct.pack("!BBII", 8, 10, tsval, tsecr)
            + b"\x01" + b"\x03\x03\x07")


def tcp_opts_ts(tsval, tsecr):
    return b"\x01\x01" + struct.pack("!BBII", 8, 10, tsval, tsecr)  # 12 bytes


class Seg:
    """One TCP segment (addresses as text)."""

    def __init__(self, src, sport, dst, dport, seq, ack, flags, payload=b"", opts=b"", window=64240):
        self.src, self.sport, self.dst, self.dport = src, sport, dst, dport
        self.seq = seq & 0xFFFFFFFF
        self.ack = ack & 0xFFFFFFFF
        self.flags = flags
        self.payload = payload
        self.opts = opts + b"\0" * (-len(opts) % 4)
        self.window = window

    @property
    def hdr_len(self):
        return 20 + len(self.opts)

    def tcp(self):
        off = self.hdr_len // 4
        hdr = struct.pack("!HHIIBBHHH", self.sport, self.dport, self.seq, self.ack, off << 4, self.flags,
                          self.window, 0, 0) + self.opts
        seg = hdr + self.payload
        c = checksum16(pseudo_header(self.src, self.dst, 6, len(seg)) + seg)
        return seg[:16] + struct.pack("!H", c) + seg[18:]


def ipv4(src, dst, proto, payload, ident=0, ttl=64, options=b"", df=True, mf=False, frag_off=0, tos=0):
    options = options + b"\0" * (-len(options) % 4)
    ihl = 5 + len(options) // 4
    fl = (0x4000 if df else 0) | (0x2000 if mf else 0) | (frag_off // 8)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, ihl * 4 + len(payload), ident, fl, ttl, proto, 0,
                      packed(src), packed(dst)) + options
    c = checksum16(hdr)
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + payload


def ipv6(src, dst, nh, payload, hlim=64, flow=0):
    return struct.pack("!IHBB16s16s", (6 << 28) | flow, len(payload), nh, hlim, packed(src), packed(dst)) + payload


def ip_packet(seg, ident=0, v4opts=b"", v6ext=None):
    """IP packet carrying seg.  v6ext: list of (type, body) extension headers (body w/o next-header byte)."""
    t = seg.tcp()
    if not is_v6(seg.src):
        return ipv4(seg.src, seg.dst, 6, t, ident=ident, options=v4opts)
    if not v6ext:
        return ipv6(seg.src, seg.dst, 6, t)
    types = [e[0] for e in v6ext] + [6]
    ext = b""
    for i, (_, body) in enumerate(v6ext):
        ext += bytes([types[i + 1]]) + body
    return ipv6(seg.src, seg.dst, types[0], ext + t)


def udp(src, dst, sport, dport, payload):
    u = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = checksum16(pseudo_header(src, dst, 17, len(u)) + u) or 0xFFFF
    return u[:6] + struct.pack("!H", c) + u[8:]


MAC_A = bytes.fromhex("020000000a01")  # a.example side
MAC_B = bytes.fromhex("020000000b02")  # b.example side
MAC_GW = bytes.fromhex("0200000000fe")
BCAST = b"\xff" * 6


def eth(payload, ethertype, src_mac=MAC_A, dst_mac=MAC_B, tags=(), pad=b"\0"):
    hdr = dst_mac + src_mac
    for tpid, tci in tags:
        hdr += struct.pack("!HH", tpid, tci)
    frame = hdr + struct.pack("!H", ethertype) + payload
    if len(frame) < 60:
        frame += (pad * 60)[: 60 - len(frame)]
    return frame


def ethertype_of(ippkt):
    return 0x86DD if ippkt[0] >> 4 == 6 else 0x0800


def eth_ip(ippkt, from_a=True, **kw):
    s, d = (MAC_A, MAC_B) if from_a else (MAC_B, MAC_A)
    return eth(ippkt, ethertype_of(ippkt), s, d, **kw)


# ---------------------------------------------------------------------------
# TCP conversation helper
# ---------------------------------------------------------------------------


class Conv:
    """Tracks sequence numbers of one TCP connection. cl=True means client->server."""

    def __init__(self, c, cport, s, sport, c_isn, s_isn, ts_opts=False):
        self.ep = {True: (c, cport), False: (s, sport)}
        self.isn = {True: c_isn, False: s_isn}
        self.nxt = {True: c_isn, False: s_isn}
        self.ts_opts = ts_opts
        self.tsval = {True: 100000, False: 700000}

    def midstream(self):
        self.nxt = {True: (self.isn[True] + 1) & 0xFFFFFFFF, False: (self.isn[False] + 1) & 0xFFFFFFFF}
        return self

    def _opts(self, cl):
        if not self.ts_opts:
            return b""
        self.tsval[cl] += 10
        return tcp_opts_ts(self.tsval[cl], self.tsval[not cl])

    def seg(self, cl, seq, flags, payload=b"", ack=None, opts=None):
        src, sp = self.ep[cl]
        dst, dp = self.ep[not cl]
        if ack is None:
            ack = self.nxt[not cl] if flags & ACK else 0
        if opts is None:
            opts = self._opts(cl)
        return Seg(src, sp, dst, dp, seq, ack, flags, payload, opts)

    def syn(self, flags=SYN):
        s = self.seg(True, self.isn[True], flags, ack=0,
                     opts=tcp_opts_syn(self.tsval[True]) if self.ts_opts else struct.pack("!BBH", 2, 4, 1460))
        self.nxt[True] = (self.isn[True] + 1) & 0xFFFFFFFF
        return s

    def synack(self, flags=SYN | ACK):
        s = self.seg(False, self.isn[False], flags,
                     opts=tcp_opts_syn(self.tsval[False], self.tsval[True]) if self.ts_opts
                     else struct.pack("!BBH", 2, 4, 1460))
        self.nxt[False] = (self.isn[False] + 1) & 0xFFFFFFFF
        return s

    def handshake(self):
        return [self.syn(), self.synack(), self.ack(True)]

    def ack(self, cl):
        return self.seg(cl, self.nxt[cl], ACK)

    def data(self, cl, payload, flags=PSH | ACK):
        s = self.seg(cl, self.nxt[cl], flags, payload)
        self.nxt[cl] = (self.nxt[cl] + len(payload)) & 0xFFFFFFFF
        return s

    def fin(self, cl, payload=b""):
        s = self.seg(cl, self.nxt[cl], FIN | ACK | (PSH if payload else 0), payload)
        self.nxt[cl] = (self.nxt[cl] + len(payload) + 1) & 0xFFFFFFFF
        return s

    def rst(self, cl, payload=b""):
        return self.seg(cl, self.nxt[cl], RST | ACK, payload)

    def at(self, cl, off, payload, flags=PSH | ACK, ack=None):
        """Segment at stream offset `off` (relative to ISN+1); does not move nxt."""
        return self.seg(cl, (self.isn[cl] + 1 + off) & 0xFFFFFFFF, flags, payload, ack=ack)


# ---------------------------------------------------------------------------
# Capture file writers
# ---------------------------------------------------------------------------


def frame_time_ns(i, nano):
    """Timestamp of frame i (1-based): base + i*250ms + i us (+ sub-us part for nano files)."""
    t = BASE_SEC * 10**9 + i * 250_000_000 + i * 1000
    if nano:
        t += 100 + i * 7
    return t


def rfc3339(ts_ns, nano):
    sec, frac = divmod(ts_ns, 10**9)
    d = datetime.datetime.fromtimestamp(sec, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return "%s.%09dZ" % (d, frac) if nano else "%s.%06dZ" % (d, frac // 1000)


def pcap_bytes(frames, linktype, nano=False, snaplen=65535):
    """frames: list of (ts_ns, data). Returns (bytes, list of record data offsets)."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = bytearray(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
    offsets = []
    for ts, data in frames:
        sec, frac = divmod(ts, 10**9)
        if not nano:
            frac //= 1000
        cap = data[:snaplen]
        out += struct.pack("<IIII", sec, frac, len(cap), len(data))
        offsets.append(len(out))
        out += cap
    return bytes(out), offsets


def pad4(b):
    return b + b"\0" * (-len(b) % 4)


def ng_opt(code, value):
    return struct.pack("<HH", code, len(value)) + pad4(value)


def ng_opts(*opts):
    return b"".join(opts) + ng_opt(0, b"") if opts else b""


def ng_block(btype, body):
    body = pad4(body)
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def ng_shb(options=b""):
    return ng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + options)


def ng_idb(linktype, snaplen=65535, options=b""):
    return ng_block(0x00000001, struct.pack("<HHI", linktype, 0, snaplen) + options)


def ng_epb(ts_units, data, snaplen=65535, options=b"", ifid=0):
    cap = data[:snaplen]
    return ng_block(0x00000006, struct.pack("<IIIII", ifid, ts_units >> 32, ts_units & 0xFFFFFFFF, len(cap),
                                            len(data)) + pad4(cap) + options)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def to_json(v):
    """Stable pretty printer: dicts/lists holding containers are expanded, scalar-only dicts stay on one line."""

    def has_container(x):
        vals = x.values() if isinstance(x, dict) else x
        return any(isinstance(y, (dict, list)) for y in vals)

    def fmt(x, ind):
        pad = "  " * (ind + 1)
        if isinstance(x, dict) and has_container(x):
            items = ["%s%s: %s" % (pad, json.dumps(k), fmt(val, ind + 1)) for k, val in x.items()]
            return "{\n" + ",\n".join(items) + "\n" + "  " * ind + "}"
        if isinstance(x, list) and x and any(isinstance(y, dict) for y in x):
            return "[\n" + ",\n".join(pad + fmt(y, ind + 1) for y in x) + "\n" + "  " * ind + "]"
        return json.dumps(x, separators=(", ", ": "))

    return (fmt(v, 0) + "\n").encode()


# ---------------------------------------------------------------------------
# A. decode fixtures
# ---------------------------------------------------------------------------


class DecodeCapture:
    """Collects frames + their expected decoding."""

    def __init__(self, name, link_type, fmt="pcap", nano=False, snaplen=65535, desc=""):
        self.name, self.link_type, self.fmt, self.nano, self.snaplen = name, link_type, fmt, nano, snaplen
        self.desc = desc
        self.frames = []  # (data, seg or None, why a frame without seg yields none)

    def add(self, data, seg=None, skip="not_tcp"):
        """skip (frames without seg): not_tcp, fragment_held, truncated (the frame ends before its
        headers do) or malformed (its headers contradict each other)."""
        assert skip in ("not_tcp", "fragment_held", "truncated", "malformed")
        self.frames.append((data, seg, None if seg else skip))

    def tcp(self, seg, wrap, **ipkw):
        """wrap: function(ip_packet) -> link-layer frame."""
        self.add(wrap(ip_packet(seg, **ipkw)), seg)

    def expected(self, nframes=None):
        segs, non_tcp, skipped = [], [], []
        n = len(self.frames) if nframes is None else nframes
        for i, (data, seg, skip) in enumerate(self.frames[:n], 1):
            if seg is None:
                non_tcp.append(i)
                skipped.append({"frame": i, "kind": skip})
                continue
            if len(data) <= self.snaplen:
                captured = seg.payload  # fully captured (also the case for reassembled fragments)
            else:
                off = data.find(seg.tcp()[: seg.hdr_len])
                assert off >= 0, (self.name, i)
                pstart = off + seg.hdr_len
                captured = data[: self.snaplen][pstart: pstart + len(seg.payload)]
            segs.append({
                "frame": i, "time": rfc3339(frame_time_ns(i, self.nano), self.nano),
                "src": norm_addr(seg.src), "sport": seg.sport, "dst": norm_addr(seg.dst), "dport": seg.dport,
                "seq": seg.seq, "ack": seg.ack, "flags": seg.flags,
                "payload_hex": captured.hex(), "payload_length": len(seg.payload),
                "snap_truncated": len(captured) < len(seg.payload),
            })
        return {"file": self.name, "format": self.fmt, "link_type": self.link_type,
                "precision": "nano" if self.nano else "micro", "truncated_file": nframes is not None,
                "frames": n, "segments": segs, "non_tcp_frames": non_tcp, "skipped": skipped}

    def timed(self):
        return [(frame_time_ns(i, self.nano), d) for i, (d, _, _) in enumerate(self.frames, 1)]

    def emit(self, out_dir):
        data, _ = pcap_bytes(self.timed(), LINKTYPES[self.link_type], self.nano, self.snaplen)
        write(os.path.join(out_dir, self.name), data)
        write(os.path.join(out_dir, stem(self.name) + ".expected.json"), to_json(self.expected()))


def stem(name):
    return name.rsplit(".", 1)[0]


# Standard addresses
A4, B4 = "10.0.0.1", "10.0.0.2"
A6, B6 = "2001:db8::1", "2001:db8::2"


def std_conv(c, s, cport, c_isn, s_isn, ts_opts=True, syn_flags=SYN, synack_flags=SYN | ACK):
    """SYN, SYN-ACK, ACK, client stream header, server header+features, client db:result, server db:result."""
    cv = Conv(c, cport, s, XMPP_PORT, c_isn, s_isn, ts_opts=ts_opts)
    return [cv.syn(syn_flags), cv.synack(synack_flags), cv.ack(True), cv.data(True, C_HDR),
            cv.data(False, S_HDR + S_FEAT), cv.data(True, C_DB), cv.data(False, S_DB)]


def from_client(seg):
    return seg.dport == XMPP_PORT


def w_eth(seg, **kw):
    return lambda p: eth_ip(p, from_a=from_client(seg), **kw)


def sll_hdr(seg, proto):
    # packet type: 0 = to us (host), 4 = outgoing; ARPHRD_ETHER; 6-byte addr padded to 8
    outgoing = from_client(seg)
    mac = MAC_A if outgoing else MAC_B
    return struct.pack("!HHH8sH", 4 if outgoing else 0, 1, 6, mac + b"\0\0", proto)


def sll2_hdr(seg, proto):
    outgoing = from_client(seg)
    mac = MAC_A if outgoing else MAC_B
    return struct.pack("!HHIHBB8s", proto, 0, 2, 1, 4 if outgoing else 0, 6, mac + b"\0\0")


def decode_cases():
    caps = []

    # --- Ethernet baseline (IPv4, ECN-setup SYN so the flags byte uses CWR/ECE bits)
    c = DecodeCapture("ethernet.pcap", "EN10MB", desc="EN10MB, IPv4, 7-frame s2s handshake + dialback; "
                      "ECN-setup SYN (flags 0xc2) and SYN-ACK (0x52), TCP timestamp options")
    for s in std_conv(A4, B4, 40000, 1000, 5000, syn_flags=SYN | ECE | CWR, synack_flags=SYN | ACK | ECE):
        c.tcp(s, w_eth(s))
    caps.append(c)

    # --- LINUX_SLL (IPv4)
    c = DecodeCapture("linux-sll.pcap", "LINUX_SLL", desc="LINUX_SLL (113) cooked v1 header, IPv4, 7 frames, "
                      "packet types outgoing(4)/host(0)")
    for s in std_conv(A4, B4, 40001, 2000, 6000):
        c.tcp(s, lambda p, s=s: sll_hdr(s, 0x0800) + p)
    caps.append(c)

    # --- LINUX_SLL2 (IPv6)
    c = DecodeCapture("linux-sll2.pcap", "LINUX_SLL2", desc="LINUX_SLL2 (276) cooked v2 header, IPv6, 7 frames")
    for s in std_conv(A6, B6, 40002, 3000, 7000):
        c.tcp(s, lambda p, s=s: sll2_hdr(s, 0x86DD) + p)
    caps.append(c)

    # --- NULL: AF 2 for IPv4, AF 10/24/28/30 for IPv6, little-endian (host order of the writer)
    c = DecodeCapture("null.pcap", "NULL", desc="NULL (0), 4-byte little-endian AF: frames 1-3 IPv4 AF=2, "
                      "frames 4-7 IPv6 with AF=10 (Linux), 24 (Net/OpenBSD), 28 (FreeBSD), 30 (Darwin)")
    v4 = std_conv(A4, B4, 40003, 4000, 8000)[:3]
    for s in v4:
        c.tcp(s, lambda p: struct.pack("<I", 2) + p)
    v6 = std_conv(A6, B6, 40004, 4100, 8100)[:4]
    for s, af in zip(v6, (10, 24, 28, 30)):
        c.tcp(s, lambda p, af=af: struct.pack("<I", af) + p)
    caps.append(c)

    # --- LOOP: network-order family
    c = DecodeCapture("loop.pcap", "LOOP", desc="LOOP (108), 4-byte big-endian AF: frames 1-3 IPv4 AF=2, "
                      "frames 4-6 IPv6 AF=24 (OpenBSD)")
    for s in std_conv(A4, B4, 40005, 4200, 8200)[:3]:
        c.tcp(s, lambda p: struct.pack(">I", 2) + p)
    for s in std_conv(A6, B6, 40006, 4300, 8300)[:3]:
        c.tcp(s, lambda p: struct.pack(">I", 24) + p)
    caps.append(c)

    # --- RAW: IPv4 and IPv6
    c = DecodeCapture("raw.pcap", "RAW", desc="RAW (101): frames 1-4 IPv4, frames 5-8 IPv6, no link header")
    for s in std_conv(A4, B4, 40007, 4400, 8400)[:4]:
        c.tcp(s, lambda p: p)
    for s in std_conv(A6, B6, 40008, 4500, 8500)[:4]:
        c.tcp(s, lambda p: p)
    caps.append(c)

    # --- 802.1Q
    c = DecodeCapture("vlan.pcap", "EN10MB", desc="802.1Q tag (TPID 0x8100, VID 100, PCP 3), IPv4, 7 frames")
    for s in std_conv(A4, B4, 40009, 4600, 8600):
        c.tcp(s, w_eth(s, tags=[(0x8100, (3 << 13) | 100)]))
    caps.append(c)

    # --- QinQ
    c = DecodeCapture("qinq.pcap", "EN10MB", desc="QinQ: outer 0x88a8 VID 200 + inner 0x8100 VID 100, IPv6, 7 frames")
    for s in std_conv(A6, B6, 40010, 4700, 8700):
        c.tcp(s, w_eth(s, tags=[(0x88A8, 200), (0x8100, 100)]))
    caps.append(c)

    # --- IPv4 options
    c = DecodeCapture("ipv4-options.pcap", "EN10MB", desc="IPv4 with options: Router Alert (IHL 6), "
                      "Record Route + EOL pad (IHL 8), NOP x3 + Router Alert + Timestamp (IHL 10); 7 frames")
    rr = struct.pack("!BBB", 7, 11, 4) + packed("10.0.0.254") + b"\0" * 4  # 11 bytes (+1 EOL pad)
    ra = b"\x94\x04\x00\x00"
    tsopt = struct.pack("!BBBB", 0x44, 12, 5, 0) + b"\0" * 8  # timestamp-only, room for 2
    optsets = [rr, ra, rr, b"\x01\x01\x01" + ra + tsopt, ra, rr, ra]
    for i, (s, o) in enumerate(zip(std_conv(A4, B4, 40011, 4800, 8800), optsets)):
        c.tcp(s, w_eth(s), v4opts=o, ident=0x100 + i)
    caps.append(c)

    # --- IPv6 extension headers: hop-by-hop (8) + destination options (16) + routing SRH (24) before TCP
    def hbh():
        return (0, b"\x00" + b"\x01\x04" + b"\0" * 4)  # len 0, PadN(4)

    def dst():
        return (60, b"\x01" + b"\x01\x0c" + b"\0" * 12)  # len 1, PadN(12)

    def srh(final):
        return (43, struct.pack("!BBBBBH", 2, 4, 0, 0, 0, 0) + packed(final))  # len 2, type 4, SL 0

    src6, dst6 = "2001:db8:0:1::a", "2001:db8:0:0:1::b"  # RFC 5952: single 0 group kept; longest run compressed
    c = DecodeCapture("ipv6-ext-headers.pcap", "EN10MB", desc="IPv6, client->server packets carry hop-by-hop "
                      "(8 B) + destination options (16 B) + routing header type 4 SRH, segments-left 0 (24 B) "
                      "before TCP; server->client packets carry a destination options header only; "
                      "addresses exercise RFC 5952 formatting")
    for s in std_conv(src6, dst6, 40012, 4900, 8900):
        ext = [hbh(), dst(), srh(s.dst)] if from_client(s) else [dst()]
        c.tcp(s, w_eth(s), v6ext=ext)
    caps.append(c)

    # --- IPv4 fragments
    def v4_frags(seg, ident, sizes):
        t = seg.tcp()
        out, off = [], 0
        for i, n in enumerate(sizes):
            last = i == len(sizes) - 1
            chunk = t[off:] if last else t[off:off + n]
            assert last or n % 8 == 0
            out.append(ipv4(seg.src, seg.dst, 6, chunk, ident=ident, df=False, mf=not last, frag_off=off))
            off += len(chunk)
        return out

    for name, order, desc in (
            ("ipv4-fragments.pcap", (0, 1, 2), "IPv4: handshake, then the client stream-header segment "
             "(218 B of TCP) split into 3 fragments (80/80/58 B) delivered in order (frames 4-6, "
             "segment on frame 6), then an unfragmented reply"),
            ("ipv4-fragments-out-of-order.pcap", (2, 0, 1), "IPv4: same datagram split into 3 fragments "
             "delivered last, first, middle (frames 4,5,6 -> completes on frame 6 with the middle fragment)")):
        c = DecodeCapture(name, "EN10MB", desc=desc)
        conv = std_conv(A4, B4, 40013, 5000, 9000)
        for s in conv[:3]:
            c.tcp(s, w_eth(s))
        assert len(conv[3].tcp()) == 218
        frags = v4_frags(conv[3], 0x4242, (80, 80, 0))
        for k, idx in enumerate(order):
            c.add(eth_ip(frags[idx]), conv[3] if k == 2 else None, skip="fragment_held")
        c.tcp(conv[4], w_eth(conv[4]))
        caps.append(c)

    # --- IPv6 fragments (Fragment extension header, next header 44)
    def v6_frags(seg, ident, sizes):
        t = seg.tcp()
        out, off = [], 0
        for i, n in enumerate(sizes):
            last = i == len(sizes) - 1
            chunk = t[off:] if last else t[off:off + n]
            fh = struct.pack("!BBHI", 6, 0, (off // 8) << 3 | (0 if last else 1), ident)
            out.append(ipv6(seg.src, seg.dst, 44, fh + chunk))
            off += len(chunk)
        return out

    c = DecodeCapture("ipv6-fragments.pcap", "EN10MB", desc="IPv6 Fragment header: client stream header in 3 "
                      "fragments (104/104/10 B) in order (frames 4-6), server header+features in 3 fragments (128/96/91 B) "
                      "delivered "
                      "2nd,3rd,1st (frames 7-9, completes on 9), then an unfragmented segment (frame 10)")
    conv = std_conv(A6, B6, 40014, 5100, 9100)
    for s in conv[:3]:
        c.tcp(s, w_eth(s))
    assert len(conv[3].tcp()) == 218 and len(conv[4].tcp()) == 315
    fr = v6_frags(conv[3], 0x01020304, (104, 104, 0))
    for k in range(3):
        c.add(eth_ip(fr[k]), conv[3] if k == 2 else None, skip="fragment_held")
    fr = v6_frags(conv[4], 0x01020305, (128, 96, 0))
    for k, idx in enumerate((1, 2, 0)):
        c.add(eth_ip(fr[idx], from_a=False), conv[4] if k == 2 else None, skip="fragment_held")
    c.tcp(conv[5], w_eth(conv[5]))
    caps.append(c)

    # --- Ethernet padding
    c = DecodeCapture("ethernet-padding.pcap", "EN10MB", desc="60-byte Ethernet frames with trailing pad: "
                      "pure ACKs (54 B + 6 zero pad) and a 1-byte whitespace keepalive (55 B + 5 pad bytes "
                      "that are ASCII spaces); IP total length must bound the payload")
    cv = Conv(A4, 40015, B4, XMPP_PORT, 5200, 9200, ts_opts=False)
    for s in [cv.syn(), cv.synack(), cv.ack(True), cv.data(True, C_HDR), cv.ack(False)]:
        c.tcp(s, w_eth(s))
    s = cv.data(True, KEEPALIVE)
    c.tcp(s, w_eth(s, pad=b" "))
    s = cv.ack(False)
    c.tcp(s, w_eth(s, pad=b"\0"))
    s = cv.data(False, b" ")
    c.tcp(s, w_eth(s, pad=b"\xaa"))
    caps.append(c)

    # --- snap-length cut
    c = DecodeCapture("snaplen-cut.pcap", "EN10MB", snaplen=128, desc="pcap snaplen 128: frames 4 and 5 are "
                      "cut inside the TCP payload (caplen 128 < wire length); frame 6 (16-byte payload) fits")
    cv = Conv(A4, 40016, B4, XMPP_PORT, 5300, 9300, ts_opts=True)
    for s in cv.handshake() + [cv.data(True, C_HDR), cv.data(False, S_HDR + S_FEAT), cv.fin(True, END)]:
        c.tcp(s, w_eth(s))
    caps.append(c)

    # --- nanosecond pcap
    c = DecodeCapture("nanosecond.pcap", "EN10MB", nano=True, desc="pcap with nanosecond magic 0xa1b23c4d; "
                      "timestamps have non-zero sub-microsecond digits")
    for s in std_conv(A4, B4, 40017, 5400, 9400)[:5]:
        c.tcp(s, w_eth(s))
    caps.append(c)

    # --- mixed with non-TCP
    c = DecodeCapture("mixed-non-tcp.pcap", "EN10MB", desc="TCP interleaved with ARP request/reply, DNS SRV "
                      "query/response (UDP), ICMP echo, ICMP host-unreachable quoting a TCP/5269 header "
                      "(must not be decoded as a segment), ICMPv6 neighbour solicitation")
    arp_req = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, MAC_A, packed(A4), b"\0" * 6, packed(B4))
    arp_rep = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, MAC_B, packed(B4), MAC_A, packed(A4))

    def dns_name(n):
        return b"".join(bytes([len(p)]) + p.encode() for p in n.split(".")) + b"\0"

    q = dns_name("_xmpp-server._tcp.b.example") + struct.pack("!HH", 33, 1)
    dns_q = struct.pack("!HHHHHH", 0x5a5a, 0x0100, 1, 0, 0, 0) + q
    rdata = struct.pack("!HHH", 0, 5, XMPP_PORT) + dns_name("xmpp.b.example")
    dns_r = (struct.pack("!HHHHHH", 0x5a5a, 0x8180, 1, 1, 0, 0) + q
             + struct.pack("!HHHIH", 0xC00C, 33, 1, 300, len(rdata)) + rdata)
    dns_srv = "10.0.0.53"
    icmp_echo = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + b"s2scope-ping-0001"
    icmp_echo = icmp_echo[:2] + struct.pack("!H", checksum16(icmp_echo)) + icmp_echo[4:]
    conv = std_conv(A4, B4, 40018, 5500, 9500)
    quoted_syn = Seg(A4, 40099, "10.0.0.9", XMPP_PORT, 0xDEADBEEF, 0, SYN, opts=struct.pack("!BBH", 2, 4, 1460))
    inner = ipv4(A4, "10.0.0.9", 6, quoted_syn.tcp(), ident=0x777)[:28]  # IP header + first 8 bytes of TCP
    icmp_unr = struct.pack("!BBHI", 3, 1, 0, 0) + inner
    icmp_unr = icmp_unr[:2] + struct.pack("!H", checksum16(icmp_unr)) + icmp_unr[4:]
    ns_target = "fe80::b"
    ns = struct.pack("!BBHI", 135, 0, 0, 0) + packed(ns_target) + b"\x01\x01" + MAC_A
    ns_src, ns_dst = "fe80::a", "ff02::1:ff00:b"
    ns = ns[:2] + struct.pack("!H", checksum16(pseudo_header(ns_src, ns_dst, 58, len(ns)) + ns)) + ns[4:]
    c.add(eth(arp_req, 0x0806, MAC_A, BCAST))
    c.add(eth(arp_rep, 0x0806, MAC_B, MAC_A))
    c.add(eth_ip(ipv4(A4, dns_srv, 17, udp(A4, dns_srv, 53001, 53, dns_q), ident=0x10)))
    c.add(eth_ip(ipv4(dns_srv, A4, 17, udp(dns_srv, A4, 53, 53001, dns_r), ident=0x11), from_a=False))
    for s in conv[:2]:
        c.tcp(s, w_eth(s))
    c.add(eth_ip(ipv4(A4, B4, 1, icmp_echo, ident=0x12)))
    c.tcp(conv[2], w_eth(conv[2]))
    c.tcp(conv[3], w_eth(conv[3]))
    c.add(eth_ip(ipv4("10.0.0.254", A4, 1, icmp_unr, ident=0x13), from_a=False))
    c.add(eth(ipv6(ns_src, ns_dst, 58, ns, hlim=255), 0x86DD, MAC_A, bytes.fromhex("3333ff00000b")))
    c.tcp(conv[4], w_eth(conv[4]))
    caps.append(c)

    # --- issue #16: an atomic Fragment header, then a Destination Options header whose length runs
    #     past the captured bytes; S2Scope <= f27bb57 trapped on frame 1 ("Range requires lowerBound
    #     <= upperBound") and a live sensor died with it.
    def frag_hdr(nh, off, more, ident):
        return struct.pack("!BBHI", nh, 0, (off // 8) << 3 | (1 if more else 0), ident)

    def ipv6_announcing(src, dst, nh, payload, plen):
        """An IPv6 packet whose payload length field says plen, whatever the payload holds."""
        return struct.pack("!IHBB16s16s", 6 << 28, plen, nh, 64, packed(src), packed(dst)) + payload

    overrun = frag_hdr(60, 0, False, 0x16161616) + bytes([6, 255]) + b"\x01\x04\0\0\0\0"  # DstOpts says 2048 B
    c = DecodeCapture("ipv6-atomic-fragment-dstopts-overrun.pcap", "EN10MB", desc="issue #16: frame 1 (70 bytes, "
                      "captured whole) is IPv6 with an atomic Fragment header (offset 0, M=0) and a Destination "
                      "Options header of 2,048 bytes, of which 8 are in the frame; the payload length (2,064) "
                      "covers it: truncated, never a trap. Frame 2: the same headers with a payload length of 16, "
                      "which the Destination Options header overruns: malformed. Frame 3: a valid SYN behind an "
                      "atomic Fragment header and an 8-byte Destination Options header (RFC 6946: decoded as an "
                      "unfragmented packet)")
    f1 = eth(ipv6_announcing(A6, B6, 44, overrun, 8 + 2048 + 8), 0x86DD)
    assert len(f1) == 70
    c.add(f1, skip="truncated")
    c.add(eth(ipv6_announcing(A6, B6, 44, overrun, len(overrun)), 0x86DD), skip="malformed")
    cv = Conv(A6, 40023, B6, XMPP_PORT, 6000, 10000, ts_opts=True)
    syn = cv.syn()
    dst8 = (60, b"\x00" + b"\x01\x04" + b"\0" * 4)  # len 0: 8 bytes, PadN(4)
    c.tcp(syn, w_eth(syn), v6ext=[(44, struct.pack("!BHI", 0, 0, 0x16161617)), dst8])
    caps.append(c)

    # --- IPv6 fragments whose fragmentable part starts with a Destination Options header (RFC 8200
    #     section 4.5): the headers after the Fragment header are walked once the datagram is whole.
    c = DecodeCapture("ipv6-fragments-dstopts.pcap", "EN10MB", desc="IPv6: handshake, then the client "
                      "stream-header segment behind a Destination Options header (8 B) in the fragmentable "
                      "part, split into 2 fragments (112/114 B, frames 4-5, segment on frame 5), then the "
                      "server's unfragmented reply")
    conv = std_conv(A6, B6, 40024, 6100, 10100)
    for s in conv[:3]:
        c.tcp(s, w_eth(s))
    fragmentable = bytes([6, 0]) + b"\x01\x04" + b"\0" * 4 + conv[3].tcp()
    assert len(fragmentable) == 226
    c.add(eth_ip(ipv6(A6, B6, 44, frag_hdr(60, 0, True, 0x24242424) + fragmentable[:112])), skip="fragment_held")
    c.add(eth_ip(ipv6(A6, B6, 44, frag_hdr(60, 112, False, 0x24242424) + fragmentable[112:])), conv[3])
    c.tcp(conv[4], w_eth(conv[4]))
    caps.append(c)

    return caps


def pcapng_cases(out_dir):
    """pcapng files + the truncated pcap; returns README lines."""
    lines = []

    # basic pcapng: SHB (with shb_userappl), IDB (if_name, if_tsresol=6), EPBs (one with opt_comment)
    name = "pcapng-basic.pcapng"
    c = DecodeCapture(name, "EN10MB", fmt="pcapng")
    for s in std_conv(A4, B4, 40019, 5600, 9600):
        c.tcp(s, w_eth(s))
    out = ng_shb(ng_opts(ng_opt(4, b"s2scope make-fixtures.py")))
    out += ng_idb(1, options=ng_opts(ng_opt(2, b"eth0"), ng_opt(9, b"\x06")))
    for i, (ts, d) in enumerate(c.timed(), 1):
        opts = ng_opts(ng_opt(1, b"stream header")) if i == 4 else b""
        out += ng_epb(ts // 1000, d, options=opts)
    write(os.path.join(out_dir, name), out)
    write(os.path.join(out_dir, stem(name) + ".expected.json"), to_json(c.expected()))
    lines.append((name, "pcapng: SHB (shb_userappl option) + IDB (EN10MB, if_name, if_tsresol=6) + 7 EPBs "
                        "(EPB 4 carries an opt_comment), IPv4"))

    # pcapng with custom / unknown / ISB blocks between packets
    name = "pcapng-custom-block.pcapng"
    c = DecodeCapture(name, "EN10MB", fmt="pcapng")
    for s in std_conv(A4, B4, 40020, 5700, 9700)[:5]:
        c.tcp(s, w_eth(s))
    out = ng_shb() + ng_idb(1)  # no options: default microsecond resolution
    t = c.timed()
    out += ng_epb(t[0][0] // 1000, t[0][1]) + ng_epb(t[1][0] // 1000, t[1][1])
    out += ng_block(0x40000BAD, struct.pack("<I", 32473) + b"s2scope custom block: readers must skip me")
    out += ng_epb(t[2][0] // 1000, t[2][1])
    out += ng_block(0x80000123, b"local-use block type unknown to every reader\0\0\0")
    out += ng_epb(t[3][0] // 1000, t[3][1]) + ng_epb(t[4][0] // 1000, t[4][1])
    isb_ts = t[4][0] // 1000 + 1000
    out += ng_block(0x00000005, struct.pack("<III", 0, isb_ts >> 32, isb_ts & 0xFFFFFFFF)
                    + ng_opts(ng_opt(4, struct.pack("<Q", 5)), ng_opt(5, struct.pack("<Q", 0))))
    write(os.path.join(out_dir, name), out)
    write(os.path.join(out_dir, stem(name) + ".expected.json"), to_json(c.expected()))
    lines.append((name, "pcapng: SHB + IDB + EPB, EPB, custom block 0x40000BAD (PEN 32473), EPB, "
                        "local-use block 0x80000123, EPB, EPB, ISB (type 5); 5 packets"))

    # pcapng with nanosecond if_tsresol
    name = "pcapng-nano.pcapng"
    c = DecodeCapture(name, "EN10MB", fmt="pcapng", nano=True)
    for s in std_conv(A6, B6, 40021, 5800, 9800)[:4]:
        c.tcp(s, w_eth(s))
    out = ng_shb() + ng_idb(1, options=ng_opts(ng_opt(9, b"\x09")))
    for ts, d in c.timed():
        out += ng_epb(ts, d)
    write(os.path.join(out_dir, name), out)
    write(os.path.join(out_dir, stem(name) + ".expected.json"), to_json(c.expected()))
    lines.append((name, "pcapng with if_tsresol=9 (nanosecond timestamps), IPv6, 4 packets"))

    # truncated in the middle of the 3rd record's data
    name = "truncated-mid-record.pcap"
    c = DecodeCapture(name, "EN10MB")
    for s in std_conv(A4, B4, 40022, 5900, 9900)[:5]:
        c.tcp(s, w_eth(s))
    data, offs = pcap_bytes(c.timed(), 1)
    data = data[: offs[2] + len(c.frames[2][0]) // 2]
    write(os.path.join(out_dir, name), data)
    write(os.path.join(out_dir, stem(name) + ".expected.json"), to_json(c.expected(nframes=2)))
    lines.append((name, "valid pcap of 5 records cut in the middle of record 3's packet data; "
                        "2 readable frames, truncated_file true"))
    return lines


# tshark cross-check notes (written into the README; established by --check on tshark 4.0.17)
DECODE_TSHARK_NOTES = {
    "null.pcap": "DIFFERS on frame 4: tshark 4.0 does not map AF=10 (Linux AF_INET6) in a DLT_NULL header and "
                 "leaves the frame undissected; the fixture decodes it as IPv6 (AF 24/28/30 agree)",
    "mixed-non-tcp.pcap": "DIFFERS on frame 10: tshark dissects the TCP header quoted inside the ICMP "
                          "host-unreachable (ports 40099->5269); the fixture lists frame 10 as non-TCP because "
                          "an ICMP error's quoted packet is not a segment",
    "pcapng-custom-block.pcapng": "DIFFERS in numbering: tshark 4.0 shows the custom block as a record of its own "
                                  "(frame 3, \"PCAPNG Custom Block\"), so it reports 6 frames and its frames 4-6 are "
                                  "the fixture's 3-5 (all fields agree after that shift); the fixture counts packet "
                                  "records (EPBs) only; the 0x80000123 block and the ISB are skipped by tshark too",
    "truncated-mid-record.pcap": "agrees: tshark reads 2 frames, then reports the file \"appears to have been cut "
                                 "short in the middle of a packet\"",
    "snaplen-cut.pcap": "agrees: tcp.payload is the captured bytes, tcp.len 186/283 from the IP header, frames "
                        "flagged [Packet size limited during capture]",
    "ethernet-padding.pcap": "agrees (tshark shows the pad bytes as eth.trailer, not TCP payload)",
    "ipv4-fragments.pcap": "agrees (tshark puts the reassembled segment on frame 6)",
    "ipv4-fragments-out-of-order.pcap": "agrees (segment on frame 6, the middle fragment)",
    "ipv6-fragments.pcap": "agrees (segments on frames 6 and 9)",
    "ipv6-atomic-fragment-dstopts-overrun.pcap": "agrees: tshark marks frames 1 and 2 [Malformed Packet] and decodes "
                                                 "the SYN of frame 3",
    "ipv6-fragments-dstopts.pcap": "agrees (tshark reassembles frames 4-5 and puts the segment on frame 5)",
    "nanosecond.pcap": "agrees, including nanosecond frame.time_epoch",
    "pcapng-nano.pcapng": "agrees, including nanosecond frame.time_epoch",
}


def md_cell(text):
    return text.replace("|", "\\|")


def decode_readme(rows, notes):
    out = ["# fixtures/decode",
           "",
           "Generated by `scripts/make-fixtures.py` (deterministic; do not edit by hand).",
           "",
           "Each capture `NAME.pcap`/`NAME.pcapng` has `NAME.expected.json`:",
           "",
           "```",
           '{"file", "format": "pcap"|"pcapng", "link_type": "EN10MB"|"LINUX_SLL"|"LINUX_SLL2"|"NULL"|"LOOP"|"RAW",',
           ' "precision": "micro"|"nano", "truncated_file": bool, "frames": N (readable records),',
           ' "segments": [{"frame", "time" (RFC 3339 UTC, 6 or 9 fraction digits), "src", "sport", "dst", "dport",',
           '               "seq", "ack" (raw 32-bit values), "flags" (TCP flags byte, incl. CWR/ECE),',
           '               "payload_hex" (captured payload bytes only), "payload_length" (from IP length),',
           '               "snap_truncated"}],',
           ' "non_tcp_frames": [frame numbers yielding no TCP segment],',
           ' "skipped": [{"frame", "kind": "not_tcp"|"fragment_held"|"truncated"|"malformed"}] (why each of them',
           '             yields none: not TCP, a fragment held for reassembly, the frame ends before its headers',
           '             do, its headers contradict each other)}',
           "```",
           "",
           "Frames are 1-based.  Frame i is stamped 2024-03-01T12:00:00Z + i*250 ms + i us (+ 100 + 7*i ns",
           "in nanosecond files).  IPv4 header checksums and TCP checksums are correct.  A fragmented",
           "datagram's segment belongs to the frame whose fragment completes it; the other fragment frames",
           "are in `non_tcp_frames`.  IPv6 addresses are in RFC 5952 form.",
           "",
           "| file | content | tshark 4.0.17 cross-check |",
           "|---|---|---|"]
    for name, desc in rows:
        out.append("| `%s` | %s | %s |" % (name, md_cell(desc), md_cell(notes.get(name, "agrees"))))
    out.append("")
    out.append("Cross-check: `tshark -r F -T fields -e frame.number -e ip.src -e ipv6.src -e tcp.srcport "
               "-e tcp.seq_raw -e tcp.payload` plus ip/ipv6.dst, tcp.dstport, tcp.ack_raw, tcp.flags, tcp.len and "
               "frame.time_epoch, all compared per frame (run `python3 scripts/make-fixtures.py --check`).")
    return ("\n".join(out) + "\n").encode()


# ---------------------------------------------------------------------------
# B. reassembly fixtures
# ---------------------------------------------------------------------------


def chunks(*parts):
    """bytes parts and int gaps -> [{"hex"}, {"gap"}] with adjacent bytes merged."""
    out = []
    for p in parts:
        if isinstance(p, int):
            out.append({"gap": p})
        elif p:
            if out and "hex" in out[-1]:
                out[-1]["hex"] += p.hex()
            else:
                out.append({"hex": p.hex()})
    return out


class ReasmCase:
    def __init__(self, name, desc, tshark_note="agrees"):
        self.name, self.desc, self.tshark_note = name, desc, tshark_note
        self.frames = []
        self.ident = 0x2000

    def add(self, *segs):
        for s in segs:
            self.ident += 1
            self.frames.append(eth_ip(ip_packet(s, ident=self.ident), from_a=from_client(s)))
        return len(self.frames)

    def emit(self, out_dir, connections, anomalies=()):
        frames = [(BASE_SEC * 10**9 + i * 10_000_000 + i * 1000, d) for i, d in enumerate(self.frames, 1)]
        data, _ = pcap_bytes(frames, 1)
        write(os.path.join(out_dir, self.name), data)
        anomalies = sorted(anomalies, key=lambda a: (a["connection"], a["kind"], a["direction"] or ""))
        exp = {"file": self.name, "connections": connections, "anomalies": list(anomalies)}
        write(os.path.join(out_dir, stem(self.name) + ".expected.json"), to_json(exp))


def conn(c, s, c2s, s2c, close, first, last):
    return {"client": "%s:%d" % c, "server": "%s:%d" % s, "client_to_server": c2s, "server_to_client": s2c,
            "close": close, "first_packet": first, "last_packet": last}


def anomaly(kind, connection=0, direction=None, count=1):
    return {"kind": kind, "connection": connection, "direction": direction, "count": count}


C2S, S2C = "client-to-server", "server-to-client"


def reassembly_cases(out_dir):
    cases = []
    CL, SV = (A4, 40100), (B4, XMPP_PORT)

    def new_conv(cport, c_isn, s_isn):
        return Conv(A4, cport, B4, XMPP_PORT, c_isn, s_isn)

    # in-order baseline
    r = ReasmCase("in-order.pcap", "baseline: handshake, dialback exchange, message, FIN both ways")
    cv = new_conv(40100, 1000, 2000)
    r.add(*cv.handshake(), cv.data(True, C_HDR), cv.data(False, S_HDR + S_FEAT), cv.data(True, C_DB),
          cv.data(False, S_DB), cv.data(True, C_MSG), cv.ack(False), cv.fin(True, END), cv.fin(False, END),
          cv.ack(True))
    r.emit(out_dir, [conn(CL, SV, chunks(C_HDR + C_DB + C_MSG + END), chunks(S_HDR + S_FEAT + S_DB + END),
                          "fin", 1, len(r.frames))])
    cases.append(r)

    # out-of-order
    r = ReasmCase("out-of-order.pcap", "client db:result in 3 segments delivered 1,3,2; server header and "
                  "features delivered features-first; no anomaly")
    cv = new_conv(40101, 11000, 12000)
    r.add(*cv.handshake(), cv.data(True, C_HDR))
    p1, p2, p3 = cv.data(True, C_DB[:20]), cv.data(True, C_DB[20:40]), cv.data(True, C_DB[40:])
    h, f = cv.data(False, S_HDR), cv.data(False, S_FEAT)
    r.add(p1, p3, p2, f, h, cv.ack(True), cv.data(False, S_DB), cv.fin(True, END), cv.fin(False, END),
          cv.ack(True))
    r.emit(out_dir, [conn((A4, 40101), SV, chunks(C_HDR + C_DB + END), chunks(S_HDR + S_FEAT + S_DB + END),
                          "fin", 1, len(r.frames))])
    cases.append(r)

    # retransmission re-cut at different boundaries (identical bytes)
    r = ReasmCase("retransmit-recut.pcap", "client sends 250 B as [0,100) [100,200) [200,250), retransmits "
                  "identical bytes cut as [50,150) [150,250), then [230,250)+new message in one segment; "
                  "no anomaly")
    cv = new_conv(40102, 21000, 22000)
    D = C_HDR + C_DB
    L = len(D)
    r.add(*cv.handshake())
    r.add(cv.at(True, 0, D[:100]), cv.at(True, 100, D[100:200]), cv.at(True, 200, D[200:]))
    r.add(cv.at(True, 50, D[50:150]), cv.at(True, 150, D[150:]))
    cv.nxt[True] = (cv.isn[True] + 1 + L) & 0xFFFFFFFF
    r.add(cv.ack(False), cv.at(True, L - 20, D[L - 20:] + C_MSG))
    cv.nxt[True] = (cv.nxt[True] + len(C_MSG)) & 0xFFFFFFFF
    r.add(cv.data(False, S_HDR + S_FEAT), cv.fin(True, END), cv.fin(False, END), cv.ack(True))
    r.emit(out_dir, [conn((A4, 40102), SV, chunks(D + C_MSG + END), chunks(S_HDR + S_FEAT + END),
                          "fin", 1, len(r.frames))])
    cases.append(r)

    # first-wins overlap conflict: GOOD then EVIL at the same seq
    r = ReasmCase("overlap-conflict.pcap", "client message body \"GOOD\" then a second segment at the same "
                  "seq carrying \"EVIL\": GOOD is delivered, one overlap-conflict (client-to-server)")
    cv = new_conv(40103, 31000, 32000)
    pre = b"<message from='u@a.example' to='v@b.example'><body>"
    post = b"</body></message>"
    r.add(*cv.handshake(), cv.data(True, C_HDR), cv.data(False, S_HDR + S_FEAT), cv.data(True, pre))
    good = cv.data(True, b"GOOD")
    evil = cv.at(True, len(C_HDR) + len(pre), b"EVIL")
    r.add(good, evil, cv.data(True, post), cv.ack(False), cv.fin(True, END), cv.fin(False, END), cv.ack(True))
    r.emit(out_dir, [conn((A4, 40103), SV, chunks(C_HDR + pre + b"GOOD" + post + END), chunks(S_HDR + S_FEAT + END),
                          "fin", 1, len(r.frames))],
           [anomaly("overlap-conflict", 0, C2S)])
    cases.append(r)

    # partial overlap conflicts
    r = ReasmCase("overlap-partial.pcap", "partial overlaps: (s2c) a segment re-covering the last 10 bytes of "
                  "the features with different bytes plus 56 new bytes -> old 10 bytes kept, new tail "
                  "delivered; (c2s) db:result[20:] arrives first (out of order), then db:result[0:30] whose "
                  "bytes 20-29 differ -> the earlier-arrived copy wins; one overlap-conflict per direction")
    cv = new_conv(40104, 41000, 42000)
    r.add(*cv.handshake(), cv.data(True, C_HDR))
    lh = len(S_HDR)
    r.add(cv.data(False, S_HDR), cv.data(False, S_FEAT))
    bad_tail = S_FEAT[-10:].upper()
    assert bad_tail != S_FEAT[-10:]
    r.add(cv.at(False, lh + len(S_FEAT) - 10, bad_tail + S_DB))
    cv.nxt[False] = (cv.nxt[False] + len(S_DB)) & 0xFFFFFFFF
    base = len(C_HDR)
    r.add(cv.at(True, base + 20, C_DB[20:]))
    r.add(cv.at(True, base, C_DB[:20] + b"ZZZZZZZZZZ"))
    cv.nxt[True] = (cv.nxt[True] + len(C_DB)) & 0xFFFFFFFF
    r.add(cv.ack(False), cv.fin(True, END), cv.fin(False, END), cv.ack(True))
    r.emit(out_dir, [conn((A4, 40104), SV, chunks(C_HDR + C_DB + END), chunks(S_HDR + S_FEAT + S_DB + END),
                          "fin", 1, len(r.frames))],
           [anomaly("overlap-conflict", 0, C2S), anomaly("overlap-conflict", 0, S2C)])
    cases.append(r)

    # leading gap
    r = ReasmCase("gap-leading.pcap", "client stream header (first data segment after the handshake) "
                  "missing; later client data and server ACKs past it -> leading gap of %d bytes" % len(C_HDR))
    cv = new_conv(40105, 51000, 52000)
    r.add(*cv.handshake())
    cv.data(True, C_HDR)  # lost
    r.add(cv.data(False, S_HDR + S_FEAT), cv.data(True, C_DB), cv.data(False, S_DB), cv.fin(True, END),
          cv.fin(False, END), cv.ack(True))
    r.emit(out_dir, [conn((A4, 40105), SV, chunks(len(C_HDR), C_DB + END), chunks(S_HDR + S_FEAT + S_DB + END),
                          "fin", 1, len(r.frames))],
           [anomaly("gap", 0, C2S)])
    cases.append(r)

    # middle gap
    r = ReasmCase("gap-middle.pcap", "client db:result segment missing; server ACKs past the hole -> "
                  "middle gap of %d bytes" % len(C_DB))
    cv = new_conv(40106, 61000, 62000)
    r.add(*cv.handshake(), cv.data(True, C_HDR), cv.data(False, S_HDR + S_FEAT))
    cv.data(True, C_DB)  # lost
    r.add(cv.data(False, S_DB), cv.data(True, C_MSG), cv.ack(False), cv.fin(True, END), cv.fin(False, END),
          cv.ack(True))
    r.emit(out_dir, [conn((A4, 40106), SV, chunks(C_HDR, len(C_DB), C_MSG + END), chunks(S_HDR + S_FEAT + S_DB + END),
                          "fin", 1, len(r.frames))],
           [anomaly("gap", 0, C2S)])
    cases.append(r)

    # midstream pickup
    r = ReasmCase("midstream.pcap", "no SYN/SYN-ACK: first captured packet is server->client data; client is "
                  "the non-5269 side; streams start at the first seen byte; one midstream-pickup")
    cv = new_conv(40107, 0x12345677, 0x7654320F).midstream()
    r.add(cv.data(False, S_MSG), cv.data(True, C_MSG), cv.ack(False), cv.data(True, KEEPALIVE),
          cv.fin(True, END), cv.fin(False, END), cv.ack(True))
    r.emit(out_dir, [conn((A4, 40107), SV, chunks(C_MSG + KEEPALIVE + END), chunks(S_MSG + END),
                          "fin", 1, len(r.frames))],
           [anomaly("midstream-pickup")])
    cases.append(r)

    # one-sided
    r = ReasmCase("one-sided.pcap", "only client->server packets captured (SYN, ACK, data, FIN); the client "
                  "never acknowledges server data; one one-sided anomaly, no gap; the server's FIN was never "
                  "seen, so the connection is still open (half closed) when the capture ends")
    cv = new_conv(40108, 71000, 72000)
    syn = cv.syn()
    cv.synack()  # not captured
    r.add(syn, cv.ack(True), cv.data(True, C_HDR), cv.data(True, C_DB), cv.data(True, C_MSG), cv.fin(True, END))
    r.emit(out_dir, [conn((A4, 40108), SV, chunks(C_HDR + C_DB + C_MSG + END), [], "open", 1, len(r.frames))],
           [anomaly("one-sided")])
    cases.append(r)

    # RST with payload
    r = ReasmCase("rst-with-payload.pcap", "server answers the db:result with RST|ACK carrying a stream error "
                  "(%d bytes); the RST payload is delivered; close rst" % len(S_ERR))
    cv = new_conv(40109, 81000, 82000)
    r.add(*cv.handshake(), cv.data(True, C_HDR), cv.data(False, S_HDR + S_FEAT), cv.data(True, C_DB),
          cv.rst(False, S_ERR))
    r.emit(out_dir, [conn((A4, 40109), SV, chunks(C_HDR + C_DB), chunks(S_HDR + S_FEAT + S_ERR), "rst", 1,
                          len(r.frames))])
    cases.append(r)

    # data + FIN retransmitted
    r = ReasmCase("fin-retransmit.pcap", "client FIN|PSH|ACK carrying </stream:stream> sent twice (identical "
                  "retransmission); bytes delivered once; no anomaly")
    cv = new_conv(40110, 91000, 92000)
    r.add(*cv.handshake(), cv.data(True, C_HDR), cv.data(False, S_HDR + S_FEAT), cv.data(True, C_MSG))
    f1 = cv.fin(True, END)
    f2 = cv.at(True, len(C_HDR) + len(C_MSG), END, flags=FIN | PSH | ACK)
    r.add(f1, f2, cv.ack(False), cv.fin(False, END), cv.ack(True))
    r.emit(out_dir, [conn((A4, 40110), SV, chunks(C_HDR + C_MSG + END), chunks(S_HDR + S_FEAT + END), "fin", 1,
                          len(r.frames))])
    cases.append(r)

    # port reuse
    r = ReasmCase("port-reuse.pcap", "connection closed with FIN both ways + final ACK, then a new SYN on the "
                  "same 4-tuple with a new ISN: two connections")
    cv = new_conv(40111, 100000, 200000)
    n1 = r.add(*cv.handshake(), cv.data(True, C_HDR), cv.data(False, S_HDR + S_FEAT), cv.fin(True, END),
               cv.fin(False, END), cv.ack(True))
    cv2 = new_conv(40111, 3000000000, 4000000000)
    n2 = r.add(*cv2.handshake(), cv2.data(True, C_HDR), cv2.data(False, S_HDR + S_FEAT), cv2.data(True, C_DB),
               cv2.data(False, S_DB), cv2.fin(True, END), cv2.fin(False, END), cv2.ack(True))
    r.emit(out_dir, [conn((A4, 40111), SV, chunks(C_HDR + END), chunks(S_HDR + S_FEAT + END), "fin", 1, n1),
                     conn((A4, 40111), SV, chunks(C_HDR + C_DB + END), chunks(S_HDR + S_FEAT + S_DB + END), "fin",
                          n1 + 1, n2)])
    cases.append(r)

    # sequence wrap
    r = ReasmCase("seq-wrap.pcap", "client ISN 0xffffff00, server ISN 0xfffffe80; both streams (>256 B) "
                  "cross 2^32 with a segment straddling the wrap in each direction; no anomaly")
    cv = new_conv(40112, 0xFFFFFF00, 0xFFFFFE80)
    r.add(*cv.handshake())
    cdata = C_HDR + C_DB + C_MSG
    sdata = S_HDR + S_FEAT + S_DB + S_MSG
    straddle = {True: False, False: False}
    for cl, d in ((True, cdata[:100]), (True, cdata[100:200]), (False, sdata[:120]), (True, cdata[200:300]),
                  (False, sdata[120:240]), (False, sdata[240:360]), (True, cdata[300:]), (False, sdata[360:])):
        s = cv.data(cl, d)
        if s.seq + len(d) > 1 << 32:
            straddle[cl] = True
        r.add(s)
    assert straddle[True] and straddle[False] and len(cdata) > 256 and len(sdata) > 384
    r.add(cv.fin(True, END), cv.fin(False, END), cv.ack(True))
    r.emit(out_dir, [conn((A4, 40112), SV, chunks(cdata + END), chunks(sdata + END), "fin", 1, len(r.frames))])
    cases.append(r)

    # open at end of capture
    r = ReasmCase("open-at-end.pcap", "complete exchange but no FIN/RST before the capture ends; close open")
    cv = new_conv(40113, 111000, 112000)
    r.add(*cv.handshake(), cv.data(True, C_HDR), cv.data(False, S_HDR + S_FEAT), cv.data(True, C_DB),
          cv.data(False, S_DB), cv.data(True, C_MSG), cv.ack(False))
    r.emit(out_dir, [conn((A4, 40113), SV, chunks(C_HDR + C_DB + C_MSG), chunks(S_HDR + S_FEAT + S_DB), "open", 1,
                          len(r.frames))])
    cases.append(r)

    return cases


REASM_TSHARK_NOTES = {
    "overlap-conflict.pcap": "agrees: tshark silently keeps GOOD (flags the EVIL frame as a retransmission, "
                             "no conflict warning)",
    "overlap-partial.pcap": "DIFFERS client-to-server: tshark follow delivers the late in-order copy (bytes "
                            "20-29 of the db:result = `ZZZZZZZZZZ`) over the earlier-arrived out-of-order copy; "
                            "the fixture keeps the first-received copy. server-to-client agrees",
    "retransmit-recut.pcap": "agrees on bytes; tshark's sequence analysis additionally flags frame 11 "
                             "\"ACKed unseen segment\" (confused by the re-cut retransmission)",
    "gap-leading.pcap": "agrees: tshark follow shows the hole as `[186 bytes missing in capture file].`",
    "gap-middle.pcap": "agrees: tshark follow shows the hole as `[61 bytes missing in capture file].`",
    "midstream.pcap": "agrees on bytes; tshark has no pickup notion and reports no missing bytes",
    "one-sided.pcap": "agrees on bytes; tshark has no one-sided notion",
    "rst-with-payload.pcap": "agrees: the RST payload is part of tshark's follow output",
    "port-reuse.pcap": "agrees: tshark splits the capture into tcp.stream 0 and 1",
}


def reasm_readme(cases):
    out = ["# fixtures/reassembly",
           "",
           "Generated by `scripts/make-fixtures.py` (deterministic; do not edit by hand).  All captures are",
           "pcap, EN10MB, IPv4, microsecond; client 10.0.0.1, server 10.0.0.2:5269.",
           "",
           "`NAME.expected.json`:",
           "",
           "```",
           '{"file", "connections": [{"client": "ip:port" (sent the SYN; without SYN the non-5269 side),',
           '  "server": "ip:port", "client_to_server": [{"hex"} | {"gap": N}], "server_to_client": [...],',
           '  "close": "fin"|"rst"|"open", "first_packet", "last_packet"}],',
           ' "anomalies": [{"kind": "overlap-conflict"|"gap"|"midstream-pickup"|"one-sided", "connection",',
           '                "direction": "client-to-server"|"server-to-client"|null, "count"}]}',
           "```",
           "",
           "Streams: adjacent delivered bytes are merged into one `hex` chunk, so chunks alternate",
           "between `hex` and `gap`; FIN/SYN consume no stream bytes; payload on RST is delivered.",
           "Overlaps: the first-received copy (arrival order) wins; a later copy that differs counts one",
           "overlap-conflict per conflicting segment.  `count` is the number of events of that kind for that",
           "connection+direction.  Connections are ordered by first packet; anomalies by (connection, kind,",
           "direction).  Packet numbers are 1-based frame numbers.",
           "",
           "| file | content | tshark 4.0.17 follow cross-check |",
           "|---|---|---|"]
    for c in cases:
        out.append("| `%s` | %s | %s |" % (c.name, md_cell(c.desc), md_cell(REASM_TSHARK_NOTES.get(c.name, "agrees"))))
    out.append("")
    out.append("Cross-check command: `tshark -r F -q -z follow,tcp,raw,N` (run `scripts/make-fixtures.py --check`).")
    return ("\n".join(out) + "\n").encode()


# ---------------------------------------------------------------------------
# tshark cross-check (optional; not needed to generate)
# ---------------------------------------------------------------------------


def check_decode():
    fields = ["frame.number", "ip.src", "ipv6.src", "tcp.srcport", "tcp.seq_raw", "tcp.payload",
              "frame.time_epoch", "ip.dst", "ipv6.dst", "tcp.dstport", "tcp.ack_raw", "tcp.flags", "tcp.len"]
    for fn in sorted(os.listdir(DECODE_DIR)):
        if not fn.endswith(".expected.json"):
            continue
        exp = json.load(open(os.path.join(DECODE_DIR, fn)))
        cap = os.path.join(DECODE_DIR, exp["file"])
        cmd = ["tshark", "-r", cap, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
        for f in fields:
            cmd += ["-e", f]
        p = subprocess.run(cmd, capture_output=True, text=True)
        rows = [l.split("\t") for l in p.stdout.splitlines() if l.strip()]
        segs = {s["frame"]: s for s in exp["segments"]}
        msgs = []
        if len(rows) != exp["frames"]:
            msgs.append("tshark frames %d != expected %d" % (len(rows), exp["frames"]))
        for row in rows:
            r = dict(zip(fields, row + [""] * (len(fields) - len(row))))
            fno = int(r["frame.number"])
            s = segs.get(fno)
            if s is None:
                if r["tcp.srcport"]:
                    msgs.append("frame %d: expected non-TCP, tshark shows tcp %s -> %s seq=%s"
                                % (fno, r["tcp.srcport"], r["tcp.dstport"], r["tcp.seq_raw"]))
                continue
            t = s["time"]
            want_epoch = "%d.%s" % (int(datetime.datetime.strptime(t[:19], "%Y-%m-%dT%H:%M:%S").replace(
                tzinfo=datetime.timezone.utc).timestamp()), t[20:-1].ljust(9, "0"))
            checks = {
                "src": s["src"] in (r["ip.src"] + "," + r["ipv6.src"]).split(","),
                "dst": s["dst"] in (r["ip.dst"] + "," + r["ipv6.dst"]).split(","),
                "sport": r["tcp.srcport"] == str(s["sport"]), "dport": r["tcp.dstport"] == str(s["dport"]),
                "seq": r["tcp.seq_raw"] == str(s["seq"]), "ack": r["tcp.ack_raw"] == str(s["ack"]),
                "flags": r["tcp.flags"] != "" and int(r["tcp.flags"], 16) & 0xFF == s["flags"],
                "payload": r["tcp.payload"].replace(":", "") == s["payload_hex"],
                "length": r["tcp.len"] == str(s["payload_length"]),
                "time": r["frame.time_epoch"] == want_epoch,
            }
            bad = [k for k, v in checks.items() if not v]
            if bad:
                msgs.append("frame %d: mismatch in %s (tshark: %s)" % (fno, ",".join(bad), " ".join(
                    "%s=%s" % (k, v[:30]) for k, v in r.items() if v)))
        err = [l for l in p.stderr.splitlines() if l.strip() and "Running as user" not in l]
        if err:
            msgs.append("stderr: " + " | ".join(err)[:200])
        print("%-40s %s" % (exp["file"], "OK" if not msgs else ""))
        for m in msgs:
            print("    " + m)


def follow(cap, idx):
    """-> (node names, {0: [chunks], 1: [chunks]}) with tshark's "[N bytes missing...]" markers as gaps."""
    import re
    p = subprocess.run(["tshark", "-r", cap, "-q", "-z", "follow,tcp,raw,%d" % idx], capture_output=True, text=True)
    nodes, data = [], {0: [], 1: []}
    for line in p.stdout.splitlines():
        if line.startswith("Node "):
            nodes.append(line.split(": ", 1)[1].strip())
            continue
        if len(nodes) < 2 or line.startswith("====") or not line.strip():
            continue
        k = 1 if line.startswith("\t") else 0
        raw = bytes.fromhex(line.strip())
        m = re.fullmatch(rb"\[(\d+) bytes missing in capture file\]\.?\x00?", raw)
        data[k].append(int(m.group(1)) if m else raw)
    return nodes, {k: chunks(*v) for k, v in data.items()}


def check_reassembly():
    for fn in sorted(os.listdir(REASM_DIR)):
        if not fn.endswith(".expected.json"):
            continue
        exp = json.load(open(os.path.join(REASM_DIR, fn)))
        cap = os.path.join(REASM_DIR, exp["file"])
        msgs = []
        for i, cn in enumerate(exp["connections"]):
            nodes, data = follow(cap, i)
            want = {cn["client"]: cn["client_to_server"], cn["server"]: cn["server_to_client"]}
            for k, node in enumerate(nodes):
                w = want.get(node)
                if w is None:
                    msgs.append("conn %d: unknown node %s" % (i, node))
                elif w != data[k]:
                    def show(ch):
                        return [("gap %d" % c["gap"]) if "gap" in c else
                                "%d B ...%r" % (len(c["hex"]) // 2, bytes.fromhex(c["hex"])[-40:]) for c in ch]
                    msgs.append("conn %d from %s:\n        tshark   %s\n        expected %s"
                                % (i, node, show(data[k]), show(w)))
        print("%-40s %s" % (exp["file"], "OK" if not msgs else ""))
        for m in msgs:
            print("    " + m)


# ---------------------------------------------------------------------------


def main():
    caps = decode_cases()
    for c in caps:
        c.emit(DECODE_DIR)
    rows = [(c.name, c.desc) for c in caps] + pcapng_cases(DECODE_DIR)
    write(os.path.join(DECODE_DIR, "README.md"), decode_readme(rows, DECODE_TSHARK_NOTES))
    cases = reassembly_cases(REASM_DIR)
    write(os.path.join(REASM_DIR, "README.md"), reasm_readme(cases))
    print("wrote %d decode and %d reassembly fixtures" % (len(rows), len(cases)))
    if "--check" in sys.argv[1:]:
        print("== decode (tshark fields) ==")
        check_decode()
        print("== reassembly (tshark follow,tcp,raw) ==")
        check_reassembly()


if __name__ == "__main__":
    main()
