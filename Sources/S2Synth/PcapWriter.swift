import S2Model

/// Writes classic pcap (microsecond) files: the project's own fixtures and generated captures.
public struct PcapWriter {
    public private(set) var bytes: [UInt8] = []
    public let linkType: UInt32

    public init(linkType: UInt32 = 1, snapLength: UInt32 = 262_144) {
        self.linkType = linkType
        append32(0xa1b2_c3d4)
        append16(2)
        append16(4)
        append32(0)
        append32(0)
        append32(snapLength)
        append32(linkType)
    }

    public mutating func add(_ frame: [UInt8], time: Timestamp, wireLength: Int? = nil) {
        append32(UInt32(truncatingIfNeeded: time.seconds))
        append32(UInt32(time.nanoseconds / 1000))
        append32(UInt32(frame.count))
        append32(UInt32(wireLength ?? frame.count))
        bytes.append(contentsOf: frame)
    }

    /// Drops the bytes written so far (after they were flushed to a file), keeping the header off.
    public mutating func takeBytes() -> [UInt8] {
        defer { bytes.removeAll(keepingCapacity: true) }
        return bytes
    }

    private mutating func append32(_ v: UInt32) {
        bytes.append(UInt8(v & 0xff)); bytes.append(UInt8(v >> 8 & 0xff))
        bytes.append(UInt8(v >> 16 & 0xff)); bytes.append(UInt8(v >> 24))
    }

    private mutating func append16(_ v: UInt16) {
        bytes.append(UInt8(v & 0xff)); bytes.append(UInt8(v >> 8))
    }
}
