/// Builds Ethernet/IPv4 or IPv6/TCP frames for synthetic captures.
public enum PacketBuilder {
    /// An address in text form: dotted IPv4 or full/compressed IPv6.
    public static func addressBytes(_ text: String) -> [UInt8] {
        if !text.contains(":") {
            return text.split(separator: ".").map { UInt8($0)! }
        }
        let halves = text.split(separator: "::", maxSplits: 1, omittingEmptySubsequences: false).map {
            $0.isEmpty ? [] : $0.split(separator: ":").map { UInt16($0, radix: 16)! }
        }
        var groups = halves[0]
        if halves.count == 2 { groups += Array(repeating: 0, count: 8 - halves[0].count - halves[1].count) + halves[1] }
        return groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }

    public static func tcpFrame(src: [UInt8], dst: [UInt8], sport: UInt16, dport: UInt16, seq: UInt32, ack: UInt32,
                                flags: UInt8, payload: ArraySlice<UInt8>, ipID: UInt16 = 1) -> [UInt8] {
        let v6 = src.count == 16
        var f: [UInt8] = [0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1]
        f += v6 ? [0x86, 0xdd] : [0x08, 0x00]
        let tcpLen = 20 + payload.count
        if v6 {
            f += [0x60, 0, 0, 0, UInt8(tcpLen >> 8), UInt8(tcpLen & 0xff), 6, 64]
            f += src + dst
        } else {
            let total = 20 + tcpLen
            var ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), UInt8(ipID >> 8), UInt8(ipID & 0xff),
                               0x40, 0, 64, 6, 0, 0]
            ip += src + dst
            let sum = checksum(ip)
            ip[10] = UInt8(sum >> 8)
            ip[11] = UInt8(sum & 0xff)
            f += ip
        }
        f += [UInt8(sport >> 8), UInt8(sport & 0xff), UInt8(dport >> 8), UInt8(dport & 0xff)]
        f += [UInt8(seq >> 24), UInt8(seq >> 16 & 0xff), UInt8(seq >> 8 & 0xff), UInt8(seq & 0xff)]
        f += [UInt8(ack >> 24), UInt8(ack >> 16 & 0xff), UInt8(ack >> 8 & 0xff), UInt8(ack & 0xff)]
        f += [0x50, flags, 0xff, 0xff, 0, 0, 0, 0]
        f += payload
        return f
    }

    static func checksum(_ b: [UInt8]) -> UInt16 {
        var s: UInt32 = 0
        var i = 0
        while i + 1 < b.count { s += UInt32(b[i]) << 8 | UInt32(b[i + 1]); i += 2 }
        if i < b.count { s += UInt32(b[i]) << 8 }
        while s > 0xffff { s = (s & 0xffff) + (s >> 16) }
        return ~UInt16(s)
    }
}
