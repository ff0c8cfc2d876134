import S2Model

/// Recognises TLS records in bytes that may start anywhere in a stream (a mid-stream pickup):
/// S2XMPP only needs to know that a direction is TLS, not to parse it (that is S2TLS's job).
enum TLSRecordScan {
    /// Longest record a TLS 1.2/1.3 peer may send: 2^14 bytes plus expansion.
    static let maxRecordLength = (1 << 14) + 2048

    /// Whether `b` holds TLS records: a valid record header from its first byte, or two consecutive
    /// valid record headers further in (the first bytes being the tail of a record).
    static func looksLikeRecords(_ raw: UnsafeRawBufferPointer) -> Bool {
        let b = WireBytes(raw)
        if let len = recordLength(b, at: 0) {
            return 5 + len >= b.count || recordLength(b, at: 5 + len) != nil || b.count - (5 + len) < 5
        }
        var p = 0
        while p + 5 <= b.count {
            if let len = recordLength(b, at: p), let next = Optional(p + 5 + len), next + 5 <= b.count,
               recordLength(b, at: next) != nil {
                return true
            }
            p += 1
        }
        return false
    }

    /// The length of the record whose header starts at `p`, if the five bytes there form one.
    private static func recordLength(_ b: WireBytes, at p: Int) -> Int? {
        guard let type = b.u8(p), let major = b.u8(p + 1), let minor = b.u8(p + 2), let length = b.be16(p + 3),
              (0x14...0x17).contains(type), major == 0x03, minor <= 0x04 else { return nil }
        let len = Int(length)
        return len > 0 && len <= maxRecordLength ? len : nil
    }
}
