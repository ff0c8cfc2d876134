/// A capture timestamp: seconds since the Unix epoch plus nanoseconds.
/// Kept integral so that offline runs are exactly reproducible.
public struct Timestamp: Hashable, Comparable, Sendable {
    public var seconds: Int64
    public var nanoseconds: Int32

    public init(seconds: Int64, nanoseconds: Int32) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public static let zero = Timestamp(seconds: 0, nanoseconds: 0)

    public static func < (a: Timestamp, b: Timestamp) -> Bool {
        a.seconds != b.seconds ? a.seconds < b.seconds : a.nanoseconds < b.nanoseconds
    }

    /// Total nanoseconds (fits in Int64 until the year 2262).
    public var totalNanoseconds: Int64 { seconds &* 1_000_000_000 &+ Int64(nanoseconds) }

    public init(totalNanoseconds n: Int64) {
        var s = n / 1_000_000_000
        var r = n % 1_000_000_000
        if r < 0 { r += 1_000_000_000; s -= 1 }
        self.init(seconds: s, nanoseconds: Int32(r))
    }

    /// A capture record's time from its two header fields. libpcap scales the sub-second field
    /// without checking it, so a damaged record can hold a second or more (or a negative value)
    /// there: the excess is carried into the seconds instead of trapping in a conversion.
    public init(seconds: Int64, subsecondNanoseconds sub: Int64) {
        var s = seconds &+ sub / 1_000_000_000
        var r = sub % 1_000_000_000
        if r < 0 { r += 1_000_000_000; s &-= 1 }
        self.init(seconds: s, nanoseconds: Int32(r))  // 0 <= r < 10^9
    }

    public func adding(seconds d: Double) -> Timestamp {
        Timestamp(totalNanoseconds: totalNanoseconds &+ Int64(d * 1e9))
    }

    /// Seconds from `other` to `self` (positive when self is later).
    public func secondsSince(_ other: Timestamp) -> Double {
        Double(totalNanoseconds &- other.totalNanoseconds) / 1e9
    }

    /// RFC 3339 UTC with microseconds, as the report contract asks: `2024-03-01T12:00:00.000001Z`.
    public var rfc3339: String { format(fractionDigits: 6) }

    /// RFC 3339 UTC with nanoseconds.
    public var rfc3339Nanoseconds: String { format(fractionDigits: 9) }

    private func format(fractionDigits: Int) -> String {
        var days = seconds / 86_400
        var secs = seconds % 86_400
        if secs < 0 { secs += 86_400; days -= 1 }
        let (y, m, d) = Timestamp.civil(fromDays: days)
        var frac = Int64(nanoseconds)
        for _ in 0..<(9 - fractionDigits) { frac /= 10 }
        if (0...9999).contains(y) && (0..<1_000_000_000).contains(frac) {
            // Every finding and connection carries a time: digits into a small buffer, not a dozen
            // interpolated Strings.
            var b: [UInt8] = []
            b.reserveCapacity(32)
            func digits(_ v: Int64, _ width: Int) {
                var d = v, place = 1 as Int64
                for _ in 1..<width { place *= 10 }
                while place > 0 { b.append(0x30 + UInt8(d / place)); d %= place; place /= 10 }
            }
            digits(y, 4); b.append(0x2d); digits(m, 2); b.append(0x2d); digits(d, 2); b.append(0x54)
            digits(secs / 3600, 2); b.append(0x3a); digits(secs % 3600 / 60, 2); b.append(0x3a)
            digits(secs % 60, 2); b.append(0x2e); digits(frac, fractionDigits); b.append(0x5a)
            return String(decoding: b, as: UTF8.self)
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(secs / 3600, 2)):\(pad(secs % 3600 / 60, 2)):"
            + "\(pad(secs % 60, 2)).\(pad(frac, fractionDigits))Z"
    }

    private func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}

/// `v` with `digits` decimals (no Foundation): durations in reports and evidence. Negative when a
/// capture clock stepped back between two frames (said as it is); never a trap, however large.
public func fixed(_ v: Double, _ digits: Int) -> String {
    guard v.isFinite else { return "?" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let n = Int64(min(abs(v) * scale, 9e18).rounded())
    let s = Int64(scale)
    let whole = n / s, frac = n % s
    var f = String(frac)
    while f.count < digits { f = "0" + f }
    return (v < 0 && n != 0 ? "-" : "") + String(whole) + (digits > 0 ? "." + f : "")
}
