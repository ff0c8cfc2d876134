/// Random frames from a grammar of what S2Scope decodes — and of what a hostile or broken peer
/// puts on the wire instead: every link type (EN10MB with 802.1Q/QinQ stacks, LINUX_SLL,
/// LINUX_SLL2, NULL, LOOP, RAW, IPV4, IPV6), IPv4 with option soup and fragments, IPv6 with
/// extension chains (Hop-by-Hop, Routing, Destination Options, AH, Mobility, atomic and real
/// Fragment headers), TCP with option soup, non-TCP traffic, link-layer trailers, length fields
/// that lie in both directions, and frames cut by the snap length at every layer.
///
/// Random bytes rarely get past a link header; these frames are built layer by layer, so each
/// reaches the parser that a field of it is meant to stress. Every frame carries what an honest
/// decoder must make of it (`Expectation`): the exact segment, a truncation, not TCP, a held
/// fragment — or, when a length field lies, anything but a trap. Deterministic: the same seed
/// gives the same frames on every machine (xoshiro256** seeded through SplitMix64; nothing
/// iterates a Dictionary or Set).
public struct FrameGrammar {
    /// The link types the decoder supports (libpcap DLT values).
    public static let linkTypes: [Int32] = [1, 113, 276, 0, 108, 101, 12, 14, 228, 229]

    /// The TCP segment an honest frame carries.
    public struct Segment: Equatable, Sendable {
        public var source: [UInt8]
        public var destination: [UInt8]
        public var sourcePort: UInt16
        public var destinationPort: UInt16
        public var sequence: UInt32
        public var acknowledgment: UInt32
        public var flags: UInt8
        public var window: UInt16
        public var payload: [UInt8]
    }

    /// What decoding a frame must give.
    public enum Expectation: Equatable, Sendable {
        /// Nothing lies, nothing is cut: exactly this segment.
        case segment(Segment)
        /// Cut by the snap length inside the TCP payload: this segment with only the first
        /// `captured` payload bytes (its announced length stays the whole payload's).
        case cutSegment(Segment, captured: Int)
        /// Cut by the snap length before the TCP payload starts: the decoder reports truncation.
        case truncated
        /// Not TCP (ARP, UDP, ICMP, another protocol).
        case notTCP
        /// An honest fragment that does not complete its datagram.
        case fragmentHeld
        /// A length field lies (or a lie made a fragment group incomplete): anything but a trap,
        /// and a segment, if one comes out, consistent with the frame.
        case anything
    }

    public struct Frame: Sendable {
        /// The captured bytes.
        public var bytes: [UInt8]
        /// The frame's length on the wire (more than `bytes.count` when the snap length cut it).
        public var wireLength: Int
        public var linkType: Int32
        public var expectation: Expectation
        /// How the frame was built, layer by layer (for failure messages).
        public var recipe: String
    }

    /// How often each kind of damage is applied, in percent.
    public struct Mix: Sendable {
        public var lie = 22
        public var cut = 22
        public var fragment = 15
        public var nonTCP = 8
        public var trailer = 15
        public init() {}
    }

    public var mix = Mix()
    /// The server port most segments use (so that an engine fed these frames analyses them).
    public var serverPort: UInt16 = 5269
    private var rng: Random
    private var nextID: UInt32 = 1

    public init(seed: UInt64) { rng = Random(seed: seed) }

    // MARK: - Datagrams

    /// One datagram's frames: one frame, or the fragments of a fragmented datagram in the order
    /// they are sent. `linkType` must be one of `linkTypes`.
    public mutating func next(linkType: Int32) -> [Frame] {
        let v6: Bool
        switch linkType {
        case 228: v6 = false
        case 229: v6 = true
        default: v6 = rng.percent(45)
        }
        var recipe: [String] = []
        // The upper layer.
        var upper: [UInt8]
        var proto: UInt8 = 6
        var segment: Segment?
        var tcpHeaderLength = 0
        if rng.percent(mix.nonTCP) {
            proto = [17, 1, 58, 50, 132, 47][rng.below(6)]
            if !v6 && proto == 58 { proto = 1 }
            upper = rng.bytes(rng.range(0, 64))
            recipe.append("proto \(proto) (\(upper.count) B)")
        } else {
            let built = tcp(v6: v6, recipe: &recipe)
            upper = built.bytes
            segment = built.segment
            tcpHeaderLength = built.headerLength
        }
        let addresses = address(v6: v6)
        segment?.source = addresses.0
        segment?.destination = addresses.1
        let fragmentIt = rng.percent(mix.fragment) && upper.count >= 16
        var packets: [(bytes: [UInt8], payloadStart: Int?)]  // payloadStart: TCP payload offset in the packet, unfragmented TCP only
        var fragmented = false
        // Whether the decoder keeps these fragments (it drops those that cannot carry TCP at once).
        var fragmentsKept = proto == 6
        if fragmentIt {
            if v6 {
                let f = ipv6Fragments(upper, proto: proto, addresses: addresses, recipe: &recipe)
                packets = f.packets
                fragmentsKept = f.kept
            } else {
                packets = ipv4Fragments(upper, proto: proto, addresses: addresses, recipe: &recipe)
            }
            fragmented = true
        } else if v6 {
            let p = ipv6(upper, proto: proto, addresses: addresses, recipe: &recipe)
            packets = [(p.bytes, p.upperOffset + tcpHeaderLength)]
        } else {
            let p = ipv4(upper, proto: proto, addresses: addresses, recipe: &recipe)
            packets = [(p.bytes, p.upperOffset + tcpHeaderLength)]
        }
        // Link layer, lies and cuts, frame by frame.
        var frames: [Frame] = []
        var groupLies = false
        for (k, packet) in packets.enumerated() {
            var frameRecipe = recipe
            let isLast = k == packets.count - 1
            let link = linkHeader(linkType, v6: v6, recipe: &frameRecipe)
            let ipStart = link.bytes.count
            let packetEnd = ipStart + packet.bytes.count
            var bytes = link.bytes + packet.bytes
            if link.trailer, rng.percent(mix.trailer) {
                let t = rng.bytes(rng.range(1, 24))
                bytes += t
                frameRecipe.append("trailer \(t.count) B")
            }
            var lies = link.lies
            if rng.percent(mix.lie) {
                lie(&bytes, ipStart: ipStart, v6: v6, recipe: &frameRecipe)
                lies = true
            }
            var wireLength = bytes.count
            var cut: Int?  // only a cut that removes bytes of the IP packet (a trailer is not data)
            if rng.percent(mix.cut) {
                let c = cutPoint(bytes.count, ipStart: ipStart, payloadStart: packet.payloadStart.map { ipStart + $0 })
                wireLength = bytes.count
                bytes.removeLast(bytes.count - c)
                if c < packetEnd { cut = c }
                frameRecipe.append("cut at \(c) of \(wireLength)")
            }
            let expectation: Expectation
            if lies {
                expectation = .anything
                groupLies = true
            } else if fragmented {
                if cut != nil {
                    // A cut fragment is refused (truncated), so its group never completes.
                    groupLies = true
                    expectation = fragmentsKept ? .truncated : .anything
                } else if groupLies {
                    expectation = .anything
                } else if !fragmentsKept {
                    expectation = .notTCP
                } else if isLast {
                    expectation = segment.map { .segment($0) } ?? .notTCP
                } else {
                    expectation = .fragmentHeld
                }
            } else if let segment, let start = packet.payloadStart.map({ ipStart + $0 }) {
                if let c = cut {
                    if c < start {
                        expectation = .truncated
                    } else {
                        let captured = min(c - start, segment.payload.count)
                        expectation = captured < segment.payload.count ? .cutSegment(segment, captured: captured) : .segment(segment)
                    }
                } else {
                    expectation = .segment(segment)
                }
            } else {
                expectation = cut == nil ? .notTCP : .anything
            }
            frames.append(Frame(bytes: bytes, wireLength: wireLength, linkType: linkType, expectation: expectation,
                                recipe: frameRecipe.joined(separator: ", ")))
        }
        if groupLies && fragmented {
            // Once a fragment of the group lied or was cut, the datagram may not complete.
            for i in frames.indices where frames[i].expectation != .truncated && frames[i].expectation != .notTCP {
                frames[i].expectation = .anything
            }
        }
        return frames
    }

    // MARK: - TCP

    private mutating func tcp(v6: Bool, recipe: inout [String]) -> (bytes: [UInt8], segment: Segment, headerLength: Int) {
        let client = UInt16(40_000 + rng.below(64))
        let toServer = rng.percent(60)
        let sport = toServer ? client : serverPort
        let dport = toServer ? serverPort : (rng.percent(90) ? client : UInt16(truncatingIfNeeded: rng.next()))
        let seq = UInt32(truncatingIfNeeded: rng.next()), ack = UInt32(truncatingIfNeeded: rng.next())
        let flags = rng.percent(70) ? [0x02, 0x12, 0x10, 0x18, 0x11, 0x19, 0x04, 0x14][rng.below(8)] : UInt8(truncatingIfNeeded: rng.next())
        let window = UInt16(truncatingIfNeeded: rng.next())
        let options = tcpOptions()
        let payload = self.payload()
        let headerLength = 20 + options.count
        var h: [UInt8] = []
        h += be16(sport) + be16(dport) + be32(seq) + be32(ack)
        h += [UInt8(headerLength / 4) << 4, flags] + be16(window) + [0, 0, 0, 0]
        h += options
        recipe.append("TCP \(sport)->\(dport) flags \(flags) hdr \(headerLength) payload \(payload.count)")
        let s = Segment(source: [], destination: [], sourcePort: sport, destinationPort: dport, sequence: seq,
                        acknowledgment: ack, flags: flags, window: window, payload: payload)
        return (h + payload, s, headerLength)
    }

    /// TCP option soup, padded to 4-byte units (at most 40 bytes): well-formed options, options
    /// with lengths 0, 1 or past the header, unknown kinds. The decoder skips options by the
    /// data offset, so all of these are honest.
    private mutating func tcpOptions() -> [UInt8] {
        guard rng.percent(60) else { return [] }
        var o: [UInt8] = []
        let budget = 4 * rng.range(1, 10)
        while o.count < budget {
            switch rng.below(10) {
            case 0: o.append(0)  // EOL (what follows is padding, or garbage)
            case 1: o.append(1)  // NOP
            case 2: o += [2, 4] + be16(UInt16(rng.range(536, 9000)))
            case 3: o += [3, 3, UInt8(rng.below(15))]
            case 4: o += [4, 2]
            case 5: o += [8, 10] + be32(UInt32(truncatingIfNeeded: rng.next())) + be32(UInt32(truncatingIfNeeded: rng.next()))
            case 6:
                let blocks = rng.range(1, 4)
                o += [5, UInt8(2 + 8 * blocks)] + rng.bytes(8 * blocks)
            case 7: o += [UInt8(rng.range(9, 255)), UInt8(rng.below(3))]  // length 0, 1 or 2
            case 8: o += [UInt8(rng.range(9, 255)), UInt8(rng.range(41, 255))]  // length past the header
            default: o += [30, UInt8(rng.range(3, 12))] + rng.bytes(rng.range(1, 10))  // MPTCP-ish, any length
            }
        }
        o = Array(o.prefix(budget))
        while o.count % 4 != 0 { o.append(rng.percent(50) ? 1 : 0) }
        return o
    }

    private mutating func payload() -> [UInt8] {
        switch rng.below(10) {
        case 0...3: return []
        case 4, 5:
            let snippets = ["<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='b.example' from='a.example' version='1.0'>",
                            "<db:result from='a.example' to='b.example'>abc123</db:result>",
                            "<db:verify from='b.example' to='a.example' id='s1'>abc123</db:verify>",
                            "<message from='u@a.example' to='v@b.example'><body>hi</body></message>",
                            "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
                            "</stream:stream>", " ", "<!DOCTYPE x [<!ENTITY a 'a'>]>", "<iq type='get' id='1'/>"]
            var p = Array(snippets[rng.below(snippets.count)].utf8)
            if rng.percent(30) { p = Array(p.prefix(rng.below(p.count + 1))) }
            return p
        case 6:
            // TLS records after <proceed/>: a handshake header, an alert, application data.
            let type: UInt8 = [22, 21, 23, 20][rng.below(4)]
            let body = rng.bytes(rng.range(0, 80))
            let length = rng.percent(70) ? body.count : rng.range(0, 20_000)
            return [type, 3, UInt8(rng.range(1, 4))] + be16(UInt16(truncatingIfNeeded: length)) + body
        case 7: return rng.bytes(rng.range(1, 1400))
        default: return rng.bytes(rng.range(1, 200))
        }
    }

    // MARK: - IPv4

    private mutating func address(v6: Bool) -> ([UInt8], [UInt8]) {
        if v6 {
            let a: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [UInt8(1 + rng.below(4))]
            let b: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [UInt8(0x10 + rng.below(4))]
            return rng.percent(50) ? (a, b) : (b, a)
        }
        let a: [UInt8] = [10, 0, 0, UInt8(1 + rng.below(4))], b: [UInt8] = [10, 0, 1, UInt8(1 + rng.below(4))]
        return rng.percent(50) ? (a, b) : (b, a)
    }

    private mutating func ipv4Options() -> [UInt8] {
        guard rng.percent(35) else { return [] }
        var o: [UInt8] = []
        let budget = 4 * rng.range(1, 10)
        while o.count < budget {
            switch rng.below(8) {
            case 0: o.append(0)
            case 1: o.append(1)
            case 2: o += [148, 4, 0, 0]  // Router Alert
            case 3:
                let n = rng.range(1, 4)
                o += [7, UInt8(3 + 4 * n), 4] + rng.bytes(4 * n)  // Record Route
            case 4: o += [68, 12, 5, 0] + rng.bytes(8)  // Timestamp
            case 5: o += [131, 7, 4] + rng.bytes(4)  // LSRR
            case 6: o += [UInt8(rng.range(2, 255)), UInt8(rng.below(2))]  // length 0 or 1
            default: o += [UInt8(rng.range(2, 255)), UInt8(rng.range(41, 255))]  // past the header
            }
        }
        o = Array(o.prefix(budget))
        while o.count % 4 != 0 { o.append(0) }
        return o
    }

    private func ipv4Header(_ payloadLength: Int, proto: UInt8, addresses: ([UInt8], [UInt8]), options: [UInt8],
                            id: UInt16, flagsAndOffset: UInt16) -> [UInt8] {
        let ihl = 20 + options.count
        var h: [UInt8] = [UInt8(0x40 | ihl / 4), 0] + be16(UInt16(ihl + payloadLength)) + be16(id) + be16(flagsAndOffset)
        h += [64, proto, 0, 0] + addresses.0 + addresses.1 + options
        return h
    }

    private mutating func ipv4(_ upper: [UInt8], proto: UInt8, addresses: ([UInt8], [UInt8]), recipe: inout [String]) -> (bytes: [UInt8], upperOffset: Int) {
        let options = ipv4Options()
        // Identifications below 0x8000: never one of a fragment group's (see `groupID`).
        let h = ipv4Header(upper.count, proto: proto, addresses: addresses, options: options,
                           id: UInt16(truncatingIfNeeded: rng.next()) & 0x7fff, flagsAndOffset: rng.percent(50) ? 0x4000 : 0)
        recipe.append("IPv4 ihl \(h.count)")
        return (h + upper, h.count)
    }

    /// The datagram's payload cut into 8-byte-aligned pieces, sent in order, shuffled, or with a
    /// duplicate piece; every fragment carries the group's own identification.
    private mutating func pieces(_ total: Int) -> [(offset: Int, length: Int)] {
        let count = rng.range(2, 5)
        var cuts: [Int] = []
        for _ in 1..<count {
            let c = 8 * rng.range(1, max(1, (total - 1) / 8))
            if c < total && !cuts.contains(c) { cuts.append(c) }
        }
        if cuts.isEmpty { cuts = [8] }  // at least two pieces (total >= 16): one piece would be no fragment at all
        cuts.sort()
        var out: [(Int, Int)] = []
        var start = 0
        for c in cuts + [total] {
            out.append((start, c - start))
            start = c
        }
        return out
    }

    private mutating func sendOrder(_ n: Int, recipe: inout [String]) -> [Int] {
        var order = Array(0..<n)
        switch rng.below(4) {
        case 0:
            recipe.append("in order")
        case 1:
            order.reverse()
            recipe.append("reversed")
        case 2:
            for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, rng.below(i + 1)) }
            recipe.append("shuffled")
        default:
            // A duplicate of an early piece before the group completes (first copy wins).
            order.insert(0, at: 1)
            recipe.append("duplicate first piece")
        }
        return order
    }

    /// A fragment group's identification, in a space no other packet uses and no single-byte lie
    /// moves into: IPv4 `0x8000 | n`; IPv6 `0xC5`, 16 bits of `n`, a check byte over them.
    private mutating func groupID(v6: Bool) -> UInt32 {
        let n = nextID
        nextID &+= 1
        if !v6 { return 0x8000 | n & 0x7fff }
        let hi = UInt8(truncatingIfNeeded: n >> 8), lo = UInt8(truncatingIfNeeded: n)
        let check = 0x5a ^ hi &* 3 ^ lo &* 5
        return 0xC500_0000 | UInt32(hi) << 16 | UInt32(lo) << 8 | UInt32(check)
    }

    private mutating func ipv4Fragments(_ upper: [UInt8], proto: UInt8, addresses: ([UInt8], [UInt8]),
                                        recipe: inout [String]) -> [(bytes: [UInt8], payloadStart: Int?)] {
        let id = UInt16(truncatingIfNeeded: groupID(v6: false))
        let parts = pieces(upper.count)
        let order = sendOrder(parts.count, recipe: &recipe)
        recipe.append("IPv4 fragments \(parts.map { "\($0.offset)+\($0.length)" }.joined(separator: " "))")
        return order.map { i in
            let p = parts[i]
            let more: UInt16 = i == parts.count - 1 ? 0 : 0x2000
            let options = i == 0 ? ipv4Options() : []
            let h = ipv4Header(p.length, proto: proto, addresses: addresses, options: options, id: id,
                               flagsAndOffset: more | UInt16(p.offset / 8))
            return (h + upper[p.offset..<(p.offset + p.length)], nil)
        }
    }

    // MARK: - IPv6

    /// An extension header of `type` with `next` as its next header, honest lengths.
    private mutating func extensionHeader(_ type: UInt8, next: UInt8) -> [UInt8] {
        switch type {
        case 51:
            // AH: 12 bytes of fixed fields + ICV, in 4-byte words minus 2.
            let icv = 4 * rng.range(0, 6)
            let total = 12 + icv
            return [next, UInt8(total / 4 - 2), 0, 0] + rng.bytes(8) + rng.bytes(icv)
        case 44:
            // An atomic Fragment header (RFC 6946); its identification outside the groups' space.
            return [next, 0, 0, 0] + be32(UInt32(truncatingIfNeeded: rng.next()) & 0x3fff_ffff)
        case 43:
            let total = 8 * rng.range(1, 4)
            return [next, UInt8(total / 8 - 1), UInt8([0, 2, 3, 4][rng.below(4)]), 0] + rng.bytes(total - 4)
        default:
            // Hop-by-Hop, Destination Options, Mobility: 8-byte units of option soup (the decoder
            // skips options by the header length, so their content is free).
            let total = 8 * rng.range(1, 5)
            let body = rng.percent(50) ? [1, UInt8(total - 4)] + [UInt8](repeating: 0, count: total - 4) : rng.bytes(total - 2)
            return [next, UInt8(total / 8 - 1)] + body
        }
    }

    /// Header types for a chain: Hop-by-Hop only first, then any mix.
    private mutating func chainTypes(allowAtomicFragment: Bool) -> [UInt8] {
        guard rng.percent(55) else { return [] }
        var types: [UInt8] = rng.percent(30) ? [0] : []
        for _ in 0..<rng.range(1, 5) {
            var t: UInt8 = [43, 60, 51, 135, 44][rng.below(5)]
            if t == 44 && !allowAtomicFragment { t = 60 }
            types.append(t)
        }
        return types
    }

    private func ipv6Header(_ payloadLength: Int, next: UInt8, addresses: ([UInt8], [UInt8])) -> [UInt8] {
        [0x60, 0, 0, 0] + be16(UInt16(payloadLength)) + [next, 64] + addresses.0 + addresses.1
    }

    /// Headers `types` chained to `last`: the bytes and the first header's type.
    private mutating func chain(_ types: [UInt8], last: UInt8) -> (bytes: [UInt8], first: UInt8) {
        var bytes: [UInt8] = []
        for (i, t) in types.enumerated() {
            bytes += extensionHeader(t, next: i + 1 < types.count ? types[i + 1] : last)
        }
        return (bytes, types.first ?? last)
    }

    private mutating func ipv6(_ upper: [UInt8], proto: UInt8, addresses: ([UInt8], [UInt8]), recipe: inout [String]) -> (bytes: [UInt8], upperOffset: Int) {
        let types = chainTypes(allowAtomicFragment: true)
        let c = chain(types, last: proto)
        recipe.append("IPv6 chain \(types)")
        let h = ipv6Header(c.bytes.count + upper.count, next: c.first, addresses: addresses)
        return (h + c.bytes + upper, h.count + c.bytes.count)
    }

    private mutating func ipv6Fragments(_ upper: [UInt8], proto: UInt8, addresses: ([UInt8], [UInt8]),
                                        recipe: inout [String]) -> (packets: [(bytes: [UInt8], payloadStart: Int?)], kept: Bool) {
        let id = groupID(v6: true)
        // Unfragmentable part (Hop-by-Hop, Routing) before the Fragment header; the fragmentable
        // part (Destination Options, AH…) after it, reassembled with the upper layer.
        let before: [UInt8] = (rng.percent(30) ? [0] : []) + (rng.percent(30) ? [43] : [])
        let after: [UInt8] = rng.percent(40) ? [[60, 51][rng.below(2)]] : []
        let tail = chain(after, last: proto)
        let fragmentable = tail.bytes + upper
        let parts = pieces(fragmentable.count)
        let order = sendOrder(parts.count, recipe: &recipe)
        recipe.append("IPv6 fragments before \(before) after \(after): \(parts.map { "\($0.offset)+\($0.length)" }.joined(separator: " "))")
        let packets = order.map { i -> (bytes: [UInt8], payloadStart: Int?) in
            let p = parts[i]
            let head = chain(before, last: 44)
            let more: UInt16 = i == parts.count - 1 ? 0 : 1
            let fragment: [UInt8] = [tail.first, 0] + be16(UInt16(p.offset) | more) + be32(id)
            let payload = head.bytes + fragment + fragmentable[p.offset..<(p.offset + p.length)]
            return (ipv6Header(payload.count, next: head.first, addresses: addresses) + payload, nil)
        }
        // The decoder keeps fragments whose fragmentable part may lead to TCP.
        return (packets, proto == 6 || !after.isEmpty)
    }

    // MARK: - Link layers

    private mutating func linkHeader(_ dlt: Int32, v6: Bool, recipe: inout [String]) -> (bytes: [UInt8], trailer: Bool, lies: Bool) {
        let etherType: [UInt8] = v6 ? [0x86, 0xdd] : [0x08, 0x00]
        switch dlt {
        case 1:
            var h: [UInt8] = [0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a]
            let tags = rng.percent(35) ? rng.range(1, 3) : (rng.percent(4) ? rng.range(4, 6) : 0)
            for _ in 0..<tags { h += [[0x81, 0x00], [0x88, 0xa8], [0x91, 0x00]][rng.below(3)] + be16(UInt16(rng.below(4096))) }
            recipe.append("EN10MB tags \(tags)")
            return (h + etherType, true, tags > 4)
        case 113:
            recipe.append("LINUX_SLL")
            return ([0, UInt8(rng.below(5)), 0, 1, 0, 6, 2, 0, 0, 0, 0, 0x0a, 0, 0] + etherType, true, false)
        case 276:
            recipe.append("LINUX_SLL2")
            return (etherType + [0, 0, 0, 0, 0, 2, 0, 1, UInt8(rng.below(5)), 6, 2, 0, 0, 0, 0, 0x0b, 0, 0], true, false)
        case 0, 108:
            let family: UInt32 = v6 ? [10, 24, 28, 30][rng.below(4)] : 2
            recipe.append("\(dlt == 0 ? "NULL" : "LOOP") AF \(family)")
            return (dlt == 0 ? le32(family) : be32(family), false, false)
        default:
            recipe.append("DLT \(dlt)")
            return ([], false, false)
        }
    }

    // MARK: - Damage

    /// Makes one length field of the frame lie (larger or smaller than the truth, or absurd).
    private mutating func lie(_ f: inout [UInt8], ipStart: Int, v6: Bool, recipe: inout [String]) {
        func set16(_ at: Int, _ v: Int) {
            guard at + 1 < f.count else { return }
            f[at] = UInt8(truncatingIfNeeded: v >> 8)
            f[at + 1] = UInt8(truncatingIfNeeded: v)
        }
        func absurd(_ truth: Int) -> Int {
            switch rng.below(5) {
            case 0: return truth + rng.range(1, 64)
            case 1: return max(0, truth - rng.range(1, 64))
            case 2: return 0
            case 3: return 0xffff
            default: return rng.below(0x10000)
            }
        }
        guard ipStart < f.count else { return }
        if !v6 {
            let ihl = Int(f[ipStart] & 0x0f) * 4
            switch rng.below(4) {
            case 0:
                let truth = Int(f[ipStart + 2]) << 8 | Int(f[ipStart + 3])
                set16(ipStart + 2, absurd(truth))
                recipe.append("lie: IPv4 total length")
            case 1:
                f[ipStart] = 0x40 | UInt8(rng.below(16))
                recipe.append("lie: IHL")
            case 2:
                if ipStart + ihl + 12 < f.count {
                    f[ipStart + ihl + 12] = UInt8(rng.below(16)) << 4
                    recipe.append("lie: TCP data offset")
                } else {
                    f[ipStart] = UInt8(rng.below(256))
                    recipe.append("lie: version/IHL byte")
                }
            default:
                set16(ipStart + 6, rng.below(0x10000))
                recipe.append("lie: fragment field")
            }
            return
        }
        switch rng.below(4) {
        case 0:
            let truth = Int(f[ipStart + 4]) << 8 | Int(f[ipStart + 5])
            set16(ipStart + 4, absurd(truth))
            recipe.append("lie: IPv6 payload length")
        case 1, 2:
            // Some byte of the extension chain or the TCP header: a length, a next header, an offset.
            let from = ipStart + 40
            if from < f.count {
                let at = from + rng.below(min(64, f.count - from))
                f[at] = rng.percent(50) ? 0xff : UInt8(rng.below(256))
                recipe.append("lie: byte \(at - ipStart) of the IPv6 packet")
            } else {
                f[ipStart + 6] = UInt8(rng.below(256))
                recipe.append("lie: next header")
            }
        default:
            f[ipStart + 6] = [0, 43, 44, 51, 60, 135, 139, 140, 59][rng.below(9)]
            recipe.append("lie: first next header \(f[ipStart + 6])")
        }
    }

    /// Where the snap length cuts: anywhere, or just around a layer boundary.
    private mutating func cutPoint(_ count: Int, ipStart: Int, payloadStart: Int?) -> Int {
        var marks = [0, ipStart, ipStart + 20, ipStart + 40]
        if let p = payloadStart { marks += [p - 20, p, p + 1] }
        if rng.percent(50) || count == 0 { return rng.below(count + 1) }
        let m = marks[rng.below(marks.count)] + rng.range(-2, 2)
        return min(max(0, m), count)
    }

    // MARK: - Bytes

    private func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    private func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
    private func le32(_ v: UInt32) -> [UInt8] { be32(v).reversed() }
}

/// xoshiro256** seeded through SplitMix64.
struct Random {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    init(seed: UInt64) {
        var x = seed
        func splitmix(_ x: inout UInt64) -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(&x); s1 = splitmix(&x); s2 = splitmix(&x); s3 = splitmix(&x)
    }

    mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// 0 ..< n (n > 0).
    mutating func below(_ n: Int) -> Int { Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(n)).high) }
    /// a ... b.
    mutating func range(_ a: Int, _ b: Int) -> Int { a + below(b - a + 1) }
    mutating func percent(_ p: Int) -> Bool { below(100) < p }
    mutating func bytes(_ n: Int) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(n)
        while out.count < n {
            var v = next()
            for _ in 0..<min(8, n - out.count) { out.append(UInt8(truncatingIfNeeded: v)); v >>= 8 }
        }
        return out
    }
}
