import S2Model

/// Decodes captured frames down to TCP segments: link layer, VLAN tags, IPv4 (with options and
/// fragments), IPv6 (with extension headers and fragments), TCP.
///
/// The TCP payload is cut at the IP length (Ethernet padding is not data); bytes the snap length
/// cut off are reported through `TCPSegment.payloadLength`, never invented. One decoder holds the
/// fragment buffers and is reused for every frame, so decoding allocates nothing on the common path.
public final class FrameDecoder {
    public let fragments: IPFragmentReassembler

    public init(fragmentLimits: IPFragmentReassembler.Limits = .init()) {
        fragments = IPFragmentReassembler(limits: fragmentLimits)
    }

    /// Decodes one frame. The returned segment's payload is valid until the next call.
    public func decode(_ bytes: UnsafeRawBufferPointer, linkType dlt: Int32, frame: FrameRef) -> Result<TCPSegment, DecodeSkip> {
        guard let link = LinkType(dlt: dlt) else { return .failure(.unsupportedLinkType(dlt)) }
        switch LinkDecoder.locateNetworkHeader(bytes, link: link) {
        case .failure(let e): return .failure(e)
        case .success(let (offset, proto)):
            let ip = UnsafeRawBufferPointer(rebasing: bytes[offset..<bytes.count])
            switch proto {
            case .ipv4: return decodeIPv4(ip, frame: frame)
            case .ipv6: return decodeIPv6(ip, frame: frame)
            case .other: return .failure(.notTCP)
            }
        }
    }

    private func decodeIPv4(_ p: UnsafeRawBufferPointer, frame: FrameRef) -> Result<TCPSegment, DecodeSkip> {
        guard p.count >= 20 else { return .failure(.malformed("IPv4 header cut short (\(p.count) bytes)")) }
        guard p[0] >> 4 == 4 else { return .failure(.malformed("IPv4 header with version \(p[0] >> 4)")) }
        let ihl = Int(p[0] & 0x0f) * 4
        guard ihl >= 20 else { return .failure(.malformed("IPv4 header length \(ihl) < 20")) }
        guard p.count >= ihl else { return .failure(.malformed("IPv4 options cut short")) }
        let totalLength = Int(readBE16(p, 2))
        guard totalLength >= ihl else { return .failure(.malformed("IPv4 total length \(totalLength) < header length \(ihl)")) }
        let proto = p[9]
        let src = IPAddress(bytes: p, at: 12, v6: false)
        let dst = IPAddress(bytes: p, at: 16, v6: false)
        let fragField = readBE16(p, 6)
        let moreFragments = fragField & 0x2000 != 0
        let fragOffset = Int(fragField & 0x1fff) * 8
        // Ethernet padding beyond the IP total length is not data; a snap-cut frame has fewer bytes.
        let end = min(p.count, totalLength)
        let payload = UnsafeRawBufferPointer(rebasing: p[ihl..<end])
        let announced = totalLength - ihl
        if moreFragments || fragOffset != 0 {
            guard proto == 6 else { return .failure(.notTCP) }
            guard payload.count == announced else {
                return .failure(.malformed("IPv4 fragment cut by the snap length"))
            }
            let key = IPFragmentReassembler.Key(source: src, destination: dst,
                                                identification: UInt32(readBE16(p, 4)), protocolNumber: proto)
            guard let datagram = fragments.add(key: key, offset: fragOffset, more: moreFragments,
                                               bytes: payload, frame: frame) else {
                return .failure(.fragmentHeld)
            }
            return TCPHeader.decode(datagram, announced: datagram.count, src: src, dst: dst, frame: frame)
        }
        guard proto == 6 else { return .failure(.notTCP) }
        return TCPHeader.decode(payload, announced: announced, src: src, dst: dst, frame: frame)
    }

    private func decodeIPv6(_ p: UnsafeRawBufferPointer, frame: FrameRef) -> Result<TCPSegment, DecodeSkip> {
        guard p.count >= 40 else { return .failure(.malformed("IPv6 header cut short (\(p.count) bytes)")) }
        guard p[0] >> 4 == 6 else { return .failure(.malformed("IPv6 header with version \(p[0] >> 4)")) }
        let payloadLength = Int(readBE16(p, 4))
        guard payloadLength > 0 else { return .failure(.malformed("IPv6 jumbogram or empty payload")) }
        let src = IPAddress(bytes: p, at: 8, v6: true)
        let dst = IPAddress(bytes: p, at: 24, v6: true)
        var next = p[6]
        var offset = 40
        let announcedEnd = 40 + payloadLength
        let end = min(p.count, announcedEnd)
        var fragment: (offset: Int, more: Bool, id: UInt32)? = nil
        // Walk the extension header chain (RFC 8200 §4); each step is bounds-checked.
        var steps = 0
        loop: while true {
            steps += 1
            guard steps <= 16 else { return .failure(.malformed("IPv6 extension header chain too long")) }
            switch next {
            case 0, 43, 60, 135, 139, 140:  // hop-by-hop, routing, destination options, mobility, HIP, shim6
                guard offset + 8 <= end else { return .failure(.malformed("IPv6 extension header cut short")) }
                let len = (Int(p[offset + 1]) + 1) * 8
                next = p[offset]
                offset += len
            case 44:  // fragment
                guard offset + 8 <= end else { return .failure(.malformed("IPv6 fragment header cut short")) }
                let field = readBE16(p, offset + 2)
                fragment = (Int(field & 0xfff8), field & 1 != 0, readBE32(p, offset + 4))
                next = p[offset]
                offset += 8
            case 51:  // authentication header
                guard offset + 8 <= end else { return .failure(.malformed("IPv6 AH cut short")) }
                let len = (Int(p[offset + 1]) + 2) * 4
                next = p[offset]
                offset += len
            default:
                break loop
            }
            guard offset <= announcedEnd else { return .failure(.malformed("IPv6 extension headers beyond the payload length")) }
        }
        guard offset <= end || fragment != nil else { return .failure(.malformed("IPv6 extension headers cut short")) }
        if let frag = fragment, frag.offset != 0 || frag.more {
            guard end == announcedEnd else { return .failure(.malformed("IPv6 fragment cut by the snap length")) }
            guard offset <= end else { return .failure(.malformed("IPv6 fragment cut short")) }
            // The Fragment header of every fragment names the protocol of the fragmentable part.
            guard next == 6 else { return .failure(.notTCP) }
            let payload = UnsafeRawBufferPointer(rebasing: p[offset..<end])
            let key = IPFragmentReassembler.Key(source: src, destination: dst, identification: frag.id, protocolNumber: next)
            guard let datagram = fragments.add(key: key, offset: frag.offset, more: frag.more, bytes: payload, frame: frame) else {
                return .failure(.fragmentHeld)
            }
            return TCPHeader.decode(datagram, announced: datagram.count, src: src, dst: dst, frame: frame)
        }
        guard next == 6 else { return .failure(.notTCP) }
        let payload = UnsafeRawBufferPointer(rebasing: p[offset..<end])
        return TCPHeader.decode(payload, announced: announcedEnd - offset, src: src, dst: dst, frame: frame)
    }
}
