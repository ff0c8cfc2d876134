#!/usr/bin/env python3
"""Minimal pcap/pcapng reader for lab self-checks (Python 3 standard library only).

Only what the lab needs to confirm that a capture contains what its truth file
claims: link types EN10MB, LINUX_SLL, LINUX_SLL2, RAW/IPv4/IPv6; TCP payload
per connection, ordered by sequence number, duplicates dropped.  This is not
the analyzer and makes no protocol judgement.

    pcaputil.py FILE      prints every connection's two byte streams
"""
import struct
import sys

LINKTYPE_NAMES = {1: "EN10MB", 101: "RAW", 113: "LINUX_SLL", 276: "LINUX_SLL2", 12: "RAW"}


def _read_pcap(data):
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError("not a pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        pkt = data[off:off + incl]
        off += incl
        yield linktype, sec + frac / (1e9 if nano else 1e6), pkt


def _read_pcapng(data):
    off = 0
    e = "<"
    ifaces = []
    while off + 12 <= len(data):
        btype = struct.unpack(e + "I", data[off:off + 4])[0]
        if btype == 0x0A0D0D0A:
            bom = data[off + 8:off + 12]
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        blen = struct.unpack(e + "I", data[off + 4:off + 8])[0]
        if blen < 12:
            raise ValueError("bad pcapng block length")
        body = data[off + 8:off + blen - 4]
        if btype == 1:      # IDB
            lt = struct.unpack(e + "H", body[0:2])[0]
            ifaces.append({"linktype": lt, "tsres": 1e-6})
            # options: look for if_tsresol (9)
            o = 8
            while o + 4 <= len(body):
                code, olen = struct.unpack(e + "HH", body[o:o + 4])
                if code == 0:
                    break
                if code == 9 and olen >= 1:
                    v = body[o + 4]
                    ifaces[-1]["tsres"] = (2 ** -(v & 0x7F)) if v & 0x80 else 10 ** -v
                o += 4 + ((olen + 3) & ~3)
        elif btype == 6:    # EPB
            ifid, th, tl, caplen, origlen = struct.unpack(e + "IIIII", body[0:20])
            iface = ifaces[ifid]
            ts = ((th << 32) | tl) * iface["tsres"]
            yield iface["linktype"], ts, body[20:20 + caplen]
        elif btype == 3:    # SPB
            origlen = struct.unpack(e + "I", body[0:4])[0]
            yield ifaces[0]["linktype"], 0.0, body[4:4 + origlen]
        off += blen


def read_packets(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        gen = _read_pcapng(data)
        fmt = "pcapng"
    else:
        gen = _read_pcap(data)
        fmt = "pcap"
    return fmt, list(gen)


def _l3(linktype, pkt):
    """Return (ethertype-ish, l3 bytes) or None."""
    if linktype == 1:
        if len(pkt) < 14:
            return None
        et = struct.unpack(">H", pkt[12:14])[0]
        off = 14
        while et == 0x8100 and len(pkt) >= off + 4:
            et = struct.unpack(">H", pkt[off + 2:off + 4])[0]
            off += 4
        return et, pkt[off:]
    if linktype == 113:
        return struct.unpack(">H", pkt[14:16])[0], pkt[16:]
    if linktype == 276:
        return struct.unpack(">H", pkt[0:2])[0], pkt[20:]
    if linktype in (101, 12, 228, 229):
        v = pkt[0] >> 4
        return (0x0800 if v == 4 else 0x86DD), pkt
    raise ValueError("unsupported link type %d" % linktype)


def tcp_segments(path):
    """Yield dicts: n (frame), ts, src, sport, dst, dport, seq, flags, payload, linktype.

    `path` may also be a list of files read one after the other (a rotated
    capture set); frame numbers then count through the whole set."""
    if isinstance(path, (list, tuple)):
        n0 = 0
        for p in path:
            for s in tcp_segments(p):
                s["n"] += n0
                yield s
            n0 += len(read_packets(p)[1])
        return
    fmt, pkts = read_packets(path)
    for n, (lt, ts, pkt) in enumerate(pkts, 1):
        r = _l3(lt, pkt)
        if r is None:
            continue
        et, l3 = r
        if et == 0x0800 and len(l3) >= 20:
            ihl = (l3[0] & 15) * 4
            if l3[9] != 6:
                continue
            tot = struct.unpack(">H", l3[2:4])[0]
            src = ".".join(str(b) for b in l3[12:16])
            dst = ".".join(str(b) for b in l3[16:20])
            l4 = l3[ihl:tot]
        elif et == 0x86DD and len(l3) >= 40:
            if l3[6] != 6:
                continue
            plen = struct.unpack(">H", l3[4:6])[0]
            import ipaddress
            src = str(ipaddress.IPv6Address(l3[8:24]))
            dst = str(ipaddress.IPv6Address(l3[24:40]))
            l4 = l3[40:40 + plen]
        else:
            continue
        if len(l4) < 20:
            continue
        sport, dport, seq, ack, offflags = struct.unpack(">HHIIH", l4[0:14])
        doff = (offflags >> 12) * 4
        yield {"n": n, "ts": ts, "src": src, "sport": sport, "dst": dst, "dport": dport,
               "seq": seq, "flags": offflags & 0x3F, "payload": l4[doff:], "linktype": lt,
               "format": fmt}


def connections(path, server_port=5269):
    """Reassemble: list of connections with client/server endpoints and both byte streams.
    `path` may be a list of files (see tcp_segments)."""
    conns = {}
    order = []
    for s in tcp_segments(path):
        if s["dport"] == server_port:
            key = (s["src"], s["sport"], s["dst"], s["dport"])
            d = "c2s"
        elif s["sport"] == server_port:
            key = (s["dst"], s["dport"], s["src"], s["sport"])
            d = "s2c"
        else:
            continue
        c = conns.get(key)
        if c is None:
            c = conns[key] = {"client": key[0], "cport": key[1], "server": key[2],
                              "sport": key[3], "segs": {"c2s": {}, "s2c": {}},
                              "isn": {}, "first": s["n"], "flags": []}
            order.append(key)
        if s["flags"] & 0x02:   # SYN
            c["isn"][d] = s["seq"] + 1
        c["flags"].append((d, s["flags"]))
        if s["payload"]:
            c["segs"][d].setdefault(s["seq"], s["payload"])
    out = []
    for key in order:
        c = conns[key]
        for d in ("c2s", "s2c"):
            segs = c["segs"][d]
            if not segs:
                c[d] = b""
                continue
            base = c["isn"].get(d, min(segs))
            buf = bytearray()
            for seq in sorted(segs, key=lambda q: (q - base) & 0xFFFFFFFF):
                # (no SYN seen: the lowest sequence number is the base; lab
                # captures are far too short for a wrap)
                rel = (seq - base) & 0xFFFFFFFF
                p = segs[seq]
                if rel > len(buf):      # gap: not expected in lab captures
                    buf += p
                elif rel + len(p) > len(buf):
                    buf += p[len(buf) - rel:]
            c[d] = bytes(buf)
        del c["segs"]
        out.append(c)
    return out


def main():
    for path in sys.argv[1:]:
        fmt, pkts = read_packets(path)
        lts = sorted({LINKTYPE_NAMES.get(lt, str(lt)) for lt, _, _ in pkts})
        print("%s: %s, %d packets, link types %s" % (path, fmt, len(pkts), ",".join(lts)))
        for i, c in enumerate(connections(path), 1):
            print("--- connection %d  %s:%d -> %s:%d" % (i, c["client"], c["cport"], c["server"], c["sport"]))
            print("  [initiator] " + c["c2s"].decode("utf-8", "replace"))
            print("  [acceptor ] " + c["s2c"].decode("utf-8", "replace"))


if __name__ == "__main__":
    main()
