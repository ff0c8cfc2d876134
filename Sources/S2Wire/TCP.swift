import S2Model

/// TCP header flags (RFC 9293 §3.1).
public struct TCPFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)
    public static let ece = TCPFlags(rawValue: 0x40)
    public static let cwr = TCPFlags(rawValue: 0x80)
}

/// A decoded TCP segment. `payload` borrows the frame's bytes (or the fragment buffer):
/// it is valid only until the next call to the decoder.
public struct TCPSegment {
    public var source: Endpoint
    public var destination: Endpoint
    public var sequence: UInt32
    public var acknowledgment: UInt32
    public var flags: TCPFlags
    public var window: UInt16
    /// The payload bytes that were captured.
    public var payload: UnsafeRawBufferPointer
    /// The payload length the IP header announces; larger than `payload.count` when the snap
    /// length cut the frame.
    public var payloadLength: Int
    /// The frame that carried the segment (for a fragmented datagram: the completing fragment).
    public var frame: FrameRef

    public var isSnapTruncated: Bool { payload.count < payloadLength }

    public init(source: Endpoint, destination: Endpoint, sequence: UInt32, acknowledgment: UInt32, flags: TCPFlags,
                window: UInt16, payload: UnsafeRawBufferPointer, payloadLength: Int, frame: FrameRef) {
        self.source = source
        self.destination = destination
        self.sequence = sequence
        self.acknowledgment = acknowledgment
        self.flags = flags
        self.window = window
        self.payload = payload
        self.payloadLength = payloadLength
        self.frame = frame
    }
}

/// Why a frame yields no TCP segment.
public enum DecodeSkip: Error, Equatable, Sendable {
    /// Not IP, or IP but not TCP (ARP, UDP, ICMP, ESP…): simply not ours.
    case notTCP
    /// An IP fragment was stored; the datagram is not complete yet.
    case fragmentHeld
    /// The link type is not one S2Scope decodes.
    case unsupportedLinkType(Int32)
    /// Headers are inconsistent or cut short; the reason says which.
    case malformed(String)
}

enum TCPHeader {
    /// Decodes the TCP header at the start of `p` (the IP payload: `captured` bytes present out
    /// of `announced`).
    static func decode(_ p: UnsafeRawBufferPointer, announced: Int, src: IPAddress, dst: IPAddress,
                       frame: FrameRef) -> Result<TCPSegment, DecodeSkip> {
        guard p.count >= 20 else {
            return .failure(.malformed(announced >= 20 ? "TCP header cut by the snap length"
                                                        : "TCP header shorter than 20 bytes"))
        }
        let dataOffset = Int(p[12] >> 4) * 4
        guard dataOffset >= 20 else { return .failure(.malformed("TCP data offset \(dataOffset) < 20")) }
        guard dataOffset <= announced else { return .failure(.malformed("TCP data offset \(dataOffset) beyond the IP payload")) }
        guard dataOffset <= p.count else { return .failure(.malformed("TCP options cut by the snap length")) }
        let payload = UnsafeRawBufferPointer(rebasing: p[dataOffset..<p.count])
        return .success(TCPSegment(
            source: Endpoint(address: src, port: readBE16(p, 0)),
            destination: Endpoint(address: dst, port: readBE16(p, 2)),
            sequence: readBE32(p, 4), acknowledgment: readBE32(p, 8),
            flags: TCPFlags(rawValue: p[13]), window: readBE16(p, 14),
            payload: payload, payloadLength: announced - dataOffset, frame: frame))
    }
}
