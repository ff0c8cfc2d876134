import S2Model

/// Decodes captured frames down to TCP segments: link layer, VLAN tags, IPv4 (with options and
/// fragments), IPv6 (with extension headers and fragments), TCP.
///
/// Every byte is read through `WireBytes`, so no length field can make decoding trap or read
/// outside the frame: a frame that ends before its headers do is `truncated`, one whose headers
/// contradict each other is `malformed`. The TCP payload is cut at the IP length (Ethernet padding
/// is not data); bytes the snap length cut off are reported through `TCPSegment.payloadLength`,
/// never invented. One decoder holds the fragment buffers and is reused for every frame, so
/// decoding allocates nothing on the common path.
public final class FrameDecoder {
    public let fragments: IPFragmentReassembler

    /// IPv6 extension headers walked per packet at most. RFC 8200 §4.1 allows each header once
    /// (Destination Options twice); the rest of the room is for odd but legal chains.
    static let maxExtensionHeaders = 16

    public init(fragmentLimits: IPFragmentReassembler.Limits = .init()) {
        fragments = IPFragmentReassembler(limits: fragmentLimits)
    }

    /// Decodes one frame. The returned segment's payload is valid until the next call.
    public func decode(_ bytes: UnsafeRawBufferPointer, linkType dlt: Int32, frame: FrameRef) -> Result<TCPSegment, DecodeSkip> {
        guard let link = LinkType(dlt: dlt) else { return .failure(.unsupportedLinkType(dlt)) }
        let p = WireBytes(bytes)
        switch LinkDecoder.locateNetworkHeader(p, link: link) {
        case .failure(let e): return .failure(e)
        case .success(let (offset, proto)):
            guard let ip = p.suffix(from: offset) else { return .failure(.truncated("link header cut short")) }
            switch proto {
            case .ipv4: return decodeIPv4(ip, frame: frame)
            case .ipv6: return decodeIPv6(ip, frame: frame)
            case .other: return .failure(.notTCP)
            }
        }
    }

    // MARK: - IPv4

    private func decodeIPv4(_ p: WireBytes, frame: FrameRef) -> Result<TCPSegment, DecodeSkip> {
        guard let versionIHL = p.u8(0), let totalLength16 = p.be16(2), let identification = p.be16(4),
              let fragField = p.be16(6), let proto = p.u8(9), let source = p.be32(12), let destination = p.be32(16) else {
            return .failure(.truncated("IPv4 header cut short (\(p.count) of 20 bytes)"))
        }
        guard versionIHL >> 4 == 4 else { return .failure(.malformed("IPv4 header with version \(versionIHL >> 4)")) }
        let ihl = Int(versionIHL & 0x0f) * 4
        guard ihl >= 20 else { return .failure(.malformed("IPv4 header length \(ihl) < 20")) }
        let totalLength = Int(totalLength16)
        guard totalLength >= ihl else { return .failure(.malformed("IPv4 total length \(totalLength) < header length \(ihl)")) }
        // Ethernet padding beyond the total length is not data; a snap-cut frame has fewer bytes.
        guard let payload = p.prefix(totalLength).suffix(from: ihl) else {
            return .failure(.truncated("IPv4 options cut short (\(p.count) of \(ihl) header bytes)"))
        }
        let announced = totalLength - ihl
        let src = IPAddress(ipv4: source), dst = IPAddress(ipv4: destination)
        let moreFragments = fragField & 0x2000 != 0
        let fragOffset = Int(fragField & 0x1fff) * 8
        if moreFragments || fragOffset != 0 {
            guard proto == 6 else { return .failure(.notTCP) }
            guard payload.count == announced else {
                return .failure(.truncated("IPv4 fragment cut short (\(payload.count) of \(announced) bytes)"))
            }
            guard fragOffset + announced <= IPFragmentReassembler.maxDatagram else {
                return .failure(.malformed("IPv4 fragment at offset \(fragOffset) ends beyond 65,535 bytes"))
            }
            let key = IPFragmentReassembler.Key(source: src, destination: dst,
                                                identification: UInt32(identification), protocolNumber: proto)
            guard let datagram = fragments.add(key: key, offset: fragOffset, more: moreFragments, bytes: payload, frame: frame) else {
                return .failure(.fragmentHeld)
            }
            return TCPHeader.decode(datagram, announced: datagram.count, src: src, dst: dst, frame: frame)
        }
        guard proto == 6 else { return .failure(.notTCP) }
        return TCPHeader.decode(payload, announced: announced, src: src, dst: dst, frame: frame)
    }

    // MARK: - IPv6

    private func decodeIPv6(_ p: WireBytes, frame: FrameRef) -> Result<TCPSegment, DecodeSkip> {
        guard let versionClass = p.u8(0), let payloadLength = p.be16(4), let firstNext = p.u8(6),
              let srcHigh = p.be64(8), let srcLow = p.be64(16), let dstHigh = p.be64(24), let dstLow = p.be64(32) else {
            return .failure(.truncated("IPv6 header cut short (\(p.count) of 40 bytes)"))
        }
        guard versionClass >> 4 == 6 else { return .failure(.malformed("IPv6 header with version \(versionClass >> 4)")) }
        // Payload length 0 with a Hop-by-Hop header is a jumbogram (RFC 2675); otherwise the
        // payload is empty, and the walk below says what that means for the next header.
        guard payloadLength > 0 || firstNext != 0 else { return .failure(.malformed("IPv6 jumbogram (not supported)")) }
        let announced = Int(payloadLength)
        let src = IPAddress(ipv6High: srcHigh, low: srcLow), dst = IPAddress(ipv6High: dstHigh, low: dstLow)
        // The payload as announced, cut to what was captured (link padding is not data).
        let payload = p.prefix(40 + announced).dropFirst(40)
        switch Self.walkExtensionHeaders(payload, announced: announced, next: firstNext, fragmentHeaderAllowed: true) {
        case .failure(let e):
            return .failure(e)
        case .success(.upperLayer(let proto, let offset)):
            guard proto == 6 else { return .failure(.notTCP) }
            guard let tcp = payload.suffix(from: offset) else {
                return .failure(.truncated("IPv6 extension headers end at payload byte \(offset), past the \(payload.count) bytes captured"))
            }
            return TCPHeader.decode(tcp, announced: announced - offset, src: src, dst: dst, frame: frame)
        case .success(.fragment(let f)):
            // RFC 8200 §4.5: what follows the Fragment header is a piece of the fragmentable part;
            // its own headers are walked once the datagram is whole.
            guard Self.mayCarryTCP(f.next) else { return .failure(.notTCP) }
            guard payload.count == announced, let piece = payload.suffix(from: f.dataOffset) else {
                return .failure(.truncated("IPv6 fragment cut short (\(payload.count) of \(announced) bytes)"))
            }
            guard f.offset + piece.count <= IPFragmentReassembler.maxDatagram else {
                return .failure(.malformed("IPv6 fragment at offset \(f.offset) ends beyond 65,535 bytes"))
            }
            let key = IPFragmentReassembler.Key(source: src, destination: dst, identification: f.identification, protocolNumber: f.next)
            guard let datagram = fragments.add(key: key, offset: f.offset, more: f.more, bytes: piece, frame: frame) else {
                return .failure(.fragmentHeld)
            }
            switch Self.walkExtensionHeaders(datagram, announced: datagram.count, next: f.next, fragmentHeaderAllowed: false) {
            case .failure(let e):
                return .failure(e)
            case .success(.upperLayer(let proto, let offset)):
                guard proto == 6 else { return .failure(.notTCP) }
                guard let tcp = datagram.suffix(from: offset) else {
                    return .failure(.malformed("reassembled IPv6 datagram shorter than its extension headers"))
                }
                return TCPHeader.decode(tcp, announced: tcp.count, src: src, dst: dst, frame: frame)
            case .success(.fragment):
                return .failure(.malformed("a Fragment header inside a reassembled IPv6 datagram"))
            }
        }
    }

    /// Where an IPv6 extension header chain ends.
    enum ChainEnd {
        /// The upper-layer header (`protocol`) starts at `offset` of the payload.
        case upperLayer(protocol: UInt8, offset: Int)
        /// A Fragment header of a real fragment (not an atomic one): its fields, and where the
        /// fragment's data starts in the payload.
        case fragment(Fragment)
    }

    struct Fragment {
        var next: UInt8
        var offset: Int
        var more: Bool
        var identification: UInt32
        var dataOffset: Int
    }

    /// Walks the extension header chain of an IPv6 payload (`p`: the bytes captured of the
    /// `announced` ones) from header type `first`. A header that lies beyond the announced
    /// payload is malformed; one that lies beyond the captured bytes only, truncated. An atomic
    /// Fragment header (offset 0, M = 0) is passed over as RFC 6946 asks: the packet is whole.
    static func walkExtensionHeaders(_ p: WireBytes, announced: Int, next first: UInt8,
                                     fragmentHeaderAllowed: Bool) -> Result<ChainEnd, DecodeSkip> {
        var next = first
        var offset = 0  // invariant: 0 <= offset <= announced
        var headers = 0
        while true {
            let name: String
            switch next {
            case 0: name = "Hop-by-Hop Options"
            case 43: name = "Routing"
            case 44: name = "Fragment"
            case 51: name = "Authentication"
            case 60: name = "Destination Options"
            case 135: name = "Mobility"
            case 139: name = "HIP"
            case 140: name = "Shim6"
            default: return .success(.upperLayer(protocol: next, offset: offset))
            }
            headers += 1
            guard headers <= maxExtensionHeaders else {
                return .failure(.malformed("IPv6 extension header chain longer than \(maxExtensionHeaders) headers"))
            }
            // The fixed part every header has: 2 bytes (next header, length), 8 for Fragment.
            let fixed = next == 44 ? 8 : 2
            guard fixed <= announced - offset else {
                return .failure(.malformed("IPv6 \(name) header at payload byte \(offset) runs past the payload length \(announced)"))
            }
            guard let nextHeader = p.u8(offset), let lengthField = p.u8(offset + 1), p.contains(offset: offset, length: fixed) else {
                return .failure(.truncated("IPv6 \(name) header at payload byte \(offset) cut short (\(p.count) of \(announced) payload bytes captured)"))
            }
            if next == 44 {
                guard let field = p.be16(offset + 2), let identification = p.be32(offset + 4) else {
                    return .failure(.truncated("IPv6 Fragment header cut short"))
                }
                offset += 8
                let fragmentOffset = Int(field & 0xfff8), more = field & 1 != 0
                if fragmentOffset != 0 || more {
                    guard fragmentHeaderAllowed else {
                        return .failure(.malformed("a Fragment header inside a reassembled IPv6 datagram"))
                    }
                    return .success(.fragment(Fragment(next: nextHeader, offset: fragmentOffset, more: more,
                                                       identification: identification, dataOffset: offset)))
                }
                next = nextHeader
                continue
            }
            // RFC 4302 §2.2: AH counts 4-byte words minus 2; the others 8-byte units minus 1.
            let length = next == 51 ? (Int(lengthField) + 2) * 4 : (Int(lengthField) + 1) * 8
            guard length <= announced - offset else {
                return .failure(.malformed("IPv6 \(name) header (\(length) bytes at payload byte \(offset)) runs past the payload length \(announced)"))
            }
            offset += length
            next = nextHeader
        }
    }

    /// Whether a fragmented datagram whose fragmentable part starts with header `next` can carry
    /// TCP (only those fragments are kept).
    static func mayCarryTCP(_ next: UInt8) -> Bool {
        switch next {
        case 6, 0, 43, 51, 60, 135, 139, 140: true
        default: false
        }
    }
}
