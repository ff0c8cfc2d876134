/// An IPv4 or IPv6 address as a fixed-size value (two words), cheap to hash and compare.
/// IPv4 addresses live in the low 32 bits of `low` with `isIPv6 == false`.
public struct IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64
    public var isIPv6: Bool

    public init(ipv4 value: UInt32) {
        high = 0
        low = UInt64(value)
        isIPv6 = false
    }

    public init(ipv6High high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
        isIPv6 = true
    }

    /// Parses dotted IPv4 or RFC 4291 IPv6 text; nil when it is neither.
    public init?(_ text: String) {
        if text.contains(":") {
            var groups: [UInt16] = []
            let halves = text.split(separator: "::", maxSplits: 1, omittingEmptySubsequences: false)
            guard halves.count <= 2 else { return nil }
            func parse(_ s: Substring) -> [UInt16]? {
                if s.isEmpty { return [] }
                var out: [UInt16] = []
                for part in s.split(separator: ":", omittingEmptySubsequences: false) {
                    guard let v = UInt16(part, radix: 16), part.count <= 4 else { return nil }
                    out.append(v)
                }
                return out
            }
            guard let head = parse(halves[0]) else { return nil }
            if halves.count == 2 {
                guard let tail = parse(halves[1]), head.count + tail.count < 8 else { return nil }
                groups = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
            } else {
                guard head.count == 8 else { return nil }
                groups = head
            }
            var h: UInt64 = 0, l: UInt64 = 0
            for i in 0..<4 { h = h << 16 | UInt64(groups[i]) }
            for i in 4..<8 { l = l << 16 | UInt64(groups[i]) }
            self.init(ipv6High: h, low: l)
        } else {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var v: UInt32 = 0
            for p in parts {
                guard let b = UInt8(p) else { return nil }
                v = v << 8 | UInt32(b)
            }
            self.init(ipv4: v)
        }
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        if a.isIPv6 != b.isIPv6 { return !a.isIPv6 }
        return a.high != b.high ? a.high < b.high : a.low < b.low
    }

    /// Dotted quad, or RFC 5952 text (lower case, longest zero run compressed).
    public var description: String {
        if !isIPv6 {
            let v = UInt32(truncatingIfNeeded: low)
            return "\(v >> 24).\(v >> 16 & 0xff).\(v >> 8 & 0xff).\(v & 0xff)"
        }
        var g = [UInt16](repeating: 0, count: 8)
        for i in 0..<4 {
            g[i] = UInt16(truncatingIfNeeded: high >> (48 - 16 * UInt64(i)))
            g[i + 4] = UInt16(truncatingIfNeeded: low >> (48 - 16 * UInt64(i)))
        }
        var bestStart = -1, bestLen = 0, i = 0
        while i < 8 {
            if g[i] == 0 {
                var j = i
                while j < 8 && g[j] == 0 { j += 1 }
                if j - i > bestLen && j - i >= 2 { bestStart = i; bestLen = j - i }
                i = j
            } else { i += 1 }
        }
        func hex(_ r: Range<Int>) -> String { r.map { String(g[$0], radix: 16) }.joined(separator: ":") }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLen)..<8)
    }
}

/// An address and a TCP port. Printed `192.0.2.1:5269` or `[2001:db8::1]:5269`.
public struct Endpoint: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    public static func < (a: Endpoint, b: Endpoint) -> Bool {
        a.address != b.address ? a.address < b.address : a.port < b.port
    }

    public var description: String {
        address.isIPv6 ? "[\(address)]:\(port)" : "\(address):\(port)"
    }
}
