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
    static func locateNetworkHeader(_ p: UnsafeRawBufferPointer, link: LinkType) -> Result<(Int, NetworkProtocol), DecodeSkip> {
        switch link {
        case .ethernet:
            guard p.count >= 14 else { return .failure(.malformed("Ethernet header cut short")) }
            var offset = 12
            var etherType = readBE16(p, offset)
            var tags = 0
            // 802.1Q (0x8100), 802.1ad QinQ (0x88a8) and the legacy 0x9100 tag.
            while etherType == 0x8100 || etherType == 0x88a8 || etherType == 0x9100 {
                tags += 1
                guard tags <= maxVLANTags else { return .failure(.malformed("more than \(maxVLANTags) VLAN tags")) }
                offset += 4
                guard p.count >= offset + 2 else { return .failure(.malformed("VLAN tag cut short")) }
                etherType = readBE16(p, offset)
            }
            return .success((offset + 2, etherTypeProtocol(etherType)))
        case .linuxSLL:
            guard p.count >= 16 else { return .failure(.malformed("Linux cooked header cut short")) }
            return .success((16, etherTypeProtocol(readBE16(p, 14))))
        case .linuxSLL2:
            guard p.count >= 20 else { return .failure(.malformed("Linux cooked v2 header cut short")) }
            return .success((20, etherTypeProtocol(readBE16(p, 0))))
        case .null, .loop:
            guard p.count >= 4 else { return .failure(.malformed("loopback header cut short")) }
            let be = readBE32(p, 0)
            let family = link == .loop ? be : be.byteSwapped
            // A NULL header written on a big-endian host reads byte-swapped here; accept both.
            let fam = family > 0xffff ? family.byteSwapped : family
            switch fam {
            case 2: return .success((4, .ipv4))
            case 10, 24, 28, 30: return .success((4, .ipv6))  // AF_INET6 on Linux, BSDs, macOS
            default: return .success((4, .other))
            }
        case .raw:
            guard p.count >= 1 else { return .failure(.malformed("empty raw IP frame")) }
            switch p[0] >> 4 {
            case 4: return .success((0, .ipv4))
            case 6: return .success((0, .ipv6))
            default: return .failure(.malformed("raw frame with IP version \(p[0] >> 4)"))
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
