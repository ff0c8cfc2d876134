#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import S2Synth

/// An IPv4 or IPv6 address with the MAC address the generator gives its host.
struct Host {
    let ip: [UInt8]          // 4 or 16 bytes
    let mac: [UInt8]         // 6 bytes
    var v6: Bool { ip.count == 16 }

    init(_ text: String) {
        ip = PacketBuilder.addressBytes(text)
        // Locally administered MAC derived from the address (stable, distinct per host).
        let n = ip.count
        mac = [0x02, 0x42, ip[n - 4], ip[n - 3], ip[n - 2], ip[n - 1]]
    }

    init(ip: [UInt8], mac: [UInt8]) {
        self.ip = ip
        self.mac = mac
    }
}

/// Classic pcap (microsecond) written straight into a large buffer and flushed with write(2):
/// no per-frame allocation. Frames are byte-identical to `PacketBuilder.tcpFrame` (checked by
/// `s2scope-gen --selftest`), so the synthetic fixtures and the benchmark captures agree.
final class FastPcap {
    private let fd: Int32
    private let capacity: Int
    private let buf: UnsafeMutablePointer<UInt8>
    private var pos = 0
    /// Time origin (whole seconds); frame times are Doubles relative to it.
    let baseSeconds: Int
    private(set) var bytesWritten: Int64 = 0
    private(set) var packets = 0
    private var lastMicros: Int64 = 0

    init(path: String, baseSeconds: Int = 1_700_000_000, capacity: Int = 8 << 20) throws {
        fd = path == "-" ? 1 : open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd < 0 { throw GenError("cannot open \(path): \(String(cString: strerror(errno)))") }
        self.capacity = capacity
        self.baseSeconds = baseSeconds
        buf = .allocate(capacity: capacity)
        let header = PcapWriter(linkType: 1, snapLength: 262_144).bytes
        header.withUnsafeBufferPointer { b in
            buf.update(from: b.baseAddress!, count: b.count)
        }
        pos = header.count
        bytesWritten = Int64(header.count)
    }

    deinit { buf.deallocate() }

    func flush() throws {
        var off = 0
        while off < pos {
            let n = write(fd, buf + off, pos - off)
            if n < 0 {
                if errno == EINTR { continue }
                throw GenError("write failed: \(String(cString: strerror(errno)))")
            }
            off += n
        }
        pos = 0
    }

    func close() throws {
        try flush()
        if fd != 1 { _ = Glibc.close(fd) }
    }

    @inline(__always)
    private func reserve(_ n: Int) {
        if pos + n > capacity { try! flush() }
    }

    @inline(__always) private func put8(_ v: UInt8) { buf[pos] = v; pos += 1 }
    @inline(__always) private func put16be(_ v: UInt16) { buf[pos] = UInt8(v >> 8); buf[pos + 1] = UInt8(v & 0xff); pos += 2 }
    @inline(__always) private func put32be(_ v: UInt32) {
        buf[pos] = UInt8(v >> 24); buf[pos + 1] = UInt8(v >> 16 & 0xff); buf[pos + 2] = UInt8(v >> 8 & 0xff); buf[pos + 3] = UInt8(v & 0xff)
        pos += 4
    }
    @inline(__always) private func put32le(_ v: UInt32) {
        buf[pos] = UInt8(v & 0xff); buf[pos + 1] = UInt8(v >> 8 & 0xff); buf[pos + 2] = UInt8(v >> 16 & 0xff); buf[pos + 3] = UInt8(v >> 24)
        pos += 4
    }
    @inline(__always) private func put(_ a: [UInt8]) {
        a.withUnsafeBufferPointer { b in (buf + pos).update(from: b.baseAddress!, count: b.count) }
        pos += a.count
    }

    private func recordHeader(_ time: Double, _ length: Int) {
        var us = Int64(time * 1_000_000)
        if us < lastMicros { us = lastMicros }  // never step back (rounding)
        lastMicros = us
        put32le(UInt32(truncatingIfNeeded: Int64(baseSeconds) + us / 1_000_000))
        put32le(UInt32(us % 1_000_000))
        put32le(UInt32(length))
        put32le(UInt32(length))
        packets += 1
        bytesWritten += Int64(16 + length)
    }

    private func ethernet(_ src: Host, _ dst: Host, v6: Bool) {
        put(dst.mac)
        put(src.mac)
        put16be(v6 ? 0x86dd : 0x0800)
    }

    /// IPv4 header with checksum, or IPv6 header.
    private func ipHeader(_ src: Host, _ dst: Host, proto: UInt8, l4Length: Int, ipID: UInt16) {
        if src.v6 {
            put32be(0x6000_0000)
            put16be(UInt16(l4Length))
            put8(proto)
            put8(64)
            put(src.ip)
            put(dst.ip)
        } else {
            let start = pos
            let total = 20 + l4Length
            put8(0x45); put8(0); put16be(UInt16(total)); put16be(ipID); put8(0x40); put8(0)
            put8(64); put8(proto); put16be(0)
            put(src.ip)
            put(dst.ip)
            var s: UInt32 = 0
            var i = start
            while i < start + 20 { s += UInt32(buf[i]) << 8 | UInt32(buf[i + 1]); i += 2 }
            while s > 0xffff { s = (s & 0xffff) + (s >> 16) }
            let sum = ~UInt16(s)
            buf[start + 10] = UInt8(sum >> 8)
            buf[start + 11] = UInt8(sum & 0xff)
        }
    }

    /// One Ethernet/IP/TCP frame (TCP checksum left 0, as with checksum offload and PacketBuilder).
    func tcp(time: Double, src: Host, dst: Host, sport: UInt16, dport: UInt16, seq: UInt32, ack: UInt32, flags: UInt8,
             window: UInt16 = 0xffff, ipID: UInt16, payload: UnsafeRawBufferPointer) {
        let l4 = 20 + payload.count
        let frameLen = 14 + (src.v6 ? 40 : 20) + l4
        reserve(16 + frameLen)
        recordHeader(time, frameLen)
        ethernet(src, dst, v6: src.v6)
        ipHeader(src, dst, proto: 6, l4Length: l4, ipID: ipID)
        put16be(sport); put16be(dport); put32be(seq); put32be(ack)
        put8(0x50); put8(flags); put16be(window); put16be(0); put16be(0)
        if payload.count > 0 {
            (buf + pos).update(from: payload.baseAddress!.assumingMemoryBound(to: UInt8.self), count: payload.count)
            pos += payload.count
        }
    }

    func udp(time: Double, src: Host, dst: Host, sport: UInt16, dport: UInt16, ipID: UInt16, payload: UnsafeRawBufferPointer) {
        let l4 = 8 + payload.count
        let frameLen = 14 + (src.v6 ? 40 : 20) + l4
        reserve(16 + frameLen)
        recordHeader(time, frameLen)
        ethernet(src, dst, v6: src.v6)
        ipHeader(src, dst, proto: 17, l4Length: l4, ipID: ipID)
        put16be(sport); put16be(dport); put16be(UInt16(l4)); put16be(0)
        if payload.count > 0 {
            (buf + pos).update(from: payload.baseAddress!.assumingMemoryBound(to: UInt8.self), count: payload.count)
            pos += payload.count
        }
    }

    /// An ARP who-has request (link-layer noise: not IP at all).
    func arp(time: Double, src: Host, target: [UInt8]) {
        let frameLen = 42
        reserve(16 + frameLen)
        recordHeader(time, frameLen)
        put([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]); put(src.mac); put16be(0x0806)
        put16be(1); put16be(0x0800); put8(6); put8(4); put16be(1)
        put(src.mac); put(src.ip)
        put([0, 0, 0, 0, 0, 0]); put(target)
    }
}

struct GenError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
