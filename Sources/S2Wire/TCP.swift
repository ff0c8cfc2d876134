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
///
/// `truncated` and `malformed` keep apart "the frame ends before its headers do" from "its headers
/// contradict themselves" (as gopacket's `DecodeFeedback.SetTruncated` does): only the caller knows
/// whether the snap length cut the frame or a length field lies about it.
public enum DecodeSkip: Error, Equatable, Sendable {
    /// Not IP, or IP but not TCP (ARP, UDP, ICMP, ESP…): simply not ours.
    case notTCP
    /// An IP fragment was stored; the datagram is not complete yet.
    case fragmentHeld
    /// The link type is not one S2Scope decodes.
    case unsupportedLinkType(Int32)
    /// The captured bytes end before the headers the frame announces; the reason says where.
    case truncated(String)
    /// Headers are inconsistent (a bad version, a length smaller than its header, a chain too
    /// long, an extension header beyond the announced payload); the reason says which.
    case malformed(String)

    /// The reason of a `truncated` or `malformed` skip.
    public var reason: String? {
        switch self {
        case .truncated(let why), .malformed(let why): why
        default: nil
        }
    }
}

enum TCPHeader {
    /// Decodes the TCP header at the start of `p`, the IP payload: `p.count` bytes captured of
    /// the `announced` bytes the IP header gives.
    static func decode(_ p: WireBytes, announced: Int, src: IPAddress, dst: IPAddress,
                       frame: FrameRef) -> Result<TCPSegment, DecodeSkip> {
        guard announced >= 20 else { return .failure(.malformed("TCP header shorter than 20 bytes (\(announced) announced)")) }
        guard let sport = p.be16(0), let dport = p.be16(2), let seq = p.be32(4), let ack = p.be32(8),
              let offsetByte = p.u8(12), let flags = p.u8(13), let window = p.be16(14), p.count >= 20 else {
            return .failure(.truncated("TCP header cut short (\(p.count) of 20 bytes)"))
        }
        let dataOffset = Int(offsetByte >> 4) * 4
        guard dataOffset >= 20 else { return .failure(.malformed("TCP data offset \(dataOffset) < 20")) }
        guard dataOffset <= announced else { return .failure(.malformed("TCP data offset \(dataOffset) beyond the IP payload (\(announced) bytes)")) }
        // Options are skipped whole: nothing S2Scope judges lives in them.
        guard let afterHeader = p.suffix(from: dataOffset) else {
            return .failure(.truncated("TCP options cut short (\(p.count) of \(dataOffset) header bytes)"))
        }
        // Never more than announced, whatever the caller passed: padding is not payload.
        let payload = afterHeader.prefix(announced - dataOffset)
        return .success(TCPSegment(
            source: Endpoint(address: src, port: sport), destination: Endpoint(address: dst, port: dport),
            sequence: seq, acknowledgment: ack, flags: TCPFlags(rawValue: flags), window: window,
            payload: payload.buffer, payloadLength: announced - dataOffset, frame: frame))
    }
}
