import S2Model

/// Link-layer types (libpcap DLT values) S2Scope decodes, and how to find the IP header in each.
public enum LinkType: Sendable {
    case ethernet       // DLT_EN10MB (1)
    case linuxSLL       // DLT_LINUX_SLL (113): 16-byte cooked header
    case linuxSLL2      // DLT_LINUX_SLL2 (276): 20-byte cooked header
    case null           // DLT_NULL (0): 4-byte address family in the capturing host's byte order
    case loop           // DLT_LOOP (108): 4-byte address family in network byte order
    case raw            // DLT_RAW (12/14/101): the frame starts with the IP header
    case ipv4           // DLT_IPV4 (228)
    case ipv6           // DLT_IPV6 (229)

    public init?(dlt: Int32) {
        switch dlt {
        case 1: self = .ethernet
        case 113: self = .linuxSLL
        case 276: self = .linuxSLL2
        case 0: self = .null
        case 108: self = .loop
        case 12, 14, 101: self = .raw
        case 228: self = .ipv4
        case 229: self = .ipv6
        default: return nil
        }
    }
}

enum NetworkProtocol { case ipv4, ipv6, other }

enum LinkDecoder {
    static let maxVLANTags = 4

    /// Returns the offset of the network header and which protocol it carries.
    static func locateNetworkHeader(_ p: WireBytes, link: LinkType) -> Result<(Int, NetworkProtocol), DecodeSkip> {
        switch link {
        case .ethernet:
            guard var etherType = p.be16(12) else { return .failure(.truncated("Ethernet header cut short (\(p.count) of 14 bytes)")) }
            var offset = 12
            var tags = 0
            // 802.1Q (0x8100), 802.1ad QinQ (0x88a8) and the legacy 0x9100 tag.
            while etherType == 0x8100 || etherType == 0x88a8 || etherType == 0x9100 {
                tags += 1
                guard tags <= maxVLANTags else { return .failure(.malformed("more than \(maxVLANTags) VLAN tags")) }
                offset += 4
                guard let t = p.be16(offset) else { return .failure(.truncated("VLAN tag \(tags) cut short")) }
                etherType = t
            }
            return .success((offset + 2, etherTypeProtocol(etherType)))
        case .linuxSLL:
            guard let proto = p.be16(14) else { return .failure(.truncated("Linux cooked header cut short (\(p.count) of 16 bytes)")) }
            return .success((16, etherTypeProtocol(proto)))
        case .linuxSLL2:
            guard let proto = p.be16(0), p.count >= 20 else {
                return .failure(.truncated("Linux cooked v2 header cut short (\(p.count) of 20 bytes)"))
            }
            return .success((20, etherTypeProtocol(proto)))
        case .null, .loop:
            guard let be = p.be32(0) else { return .failure(.truncated("loopback header cut short (\(p.count) of 4 bytes)")) }
            let family = link == .loop ? be : be.byteSwapped
            // A NULL header written on a big-endian host reads byte-swapped here; accept both.
            let fam = family > 0xffff ? family.byteSwapped : family
            switch fam {
            case 2: return .success((4, .ipv4))
            case 10, 24, 28, 30: return .success((4, .ipv6))  // AF_INET6 on Linux, BSDs, macOS
            default: return .success((4, .other))
            }
        case .raw:
            guard let first = p.u8(0) else { return .failure(.truncated("empty raw IP frame")) }
            switch first >> 4 {
            case 4: return .success((0, .ipv4))
            case 6: return .success((0, .ipv6))
            default: return .failure(.malformed("raw frame with IP version \(first >> 4)"))
            }
        case .ipv4: return .success((0, .ipv4))
        case .ipv6: return .success((0, .ipv6))
        }
    }

    static func etherTypeProtocol(_ t: UInt16) -> NetworkProtocol {
        switch t {
        case 0x0800: .ipv4
        case 0x86dd: .ipv6
        default: .other
        }
    }
}
