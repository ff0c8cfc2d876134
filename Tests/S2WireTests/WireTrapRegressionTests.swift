import S2Model
@testable import S2Wire
import Testing

/// Issue #16: frames that made S2Scope trap (up to f27bb57), and the families around them.
struct WireTrapRegressionTests {
    /// Ethernet + IPv6 (payload length 2,064) + an atomic Fragment header (offset 0, M = 0) + the
    /// first 8 bytes of a Destination Options header whose length field (255) says 2,048 bytes.
    /// The old decoder reached `p[2096..<70]` and trapped ("Range requires lowerBound <=
    /// upperBound", signal 4). Also in fixtures/decode/ipv6-atomic-fragment-dstopts-overrun.pcap.
    static let issue16Frame: [UInt8] = hexBytes("""
        020000000b02020000000a0186dd6000000008102c4020010db800000000000000000000000120010db8\
        0000000000000000000000023c0000001616161606ff010400000000
        """)

    static func hexBytes(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var high: UInt8?
        for c in s.utf8 {
            guard let n = UInt8(String(UnicodeScalar(c)), radix: 16) else { continue }
            if let h = high { out.append(h << 4 | n); high = nil } else { high = n }
        }
        return out
    }

    static func decode(_ bytes: [UInt8], linkType: Int32 = 1, decoder: FrameDecoder = FrameDecoder()) -> Result<TCPSegment, DecodeSkip> {
        bytes.withUnsafeBytes { decoder.decode($0, linkType: linkType, frame: FrameRef(input: 0, number: 1, time: .zero)) }
    }

    @Test func theIssue16FrameIsTruncatedNotATrap() {
        #expect(Self.issue16Frame.count == 70)
        guard case .failure(.truncated(let why)) = Self.decode(Self.issue16Frame) else {
            Issue.record("expected a truncated skip, got \(Self.decode(Self.issue16Frame))")
            return
        }
        #expect(why.contains("extension headers end at payload byte 2056"), "\(why)")
    }

    /// The same headers with every payload length from 0 to 65,535 (the Destination Options
    /// header fits the announced payload or not, the TCP header is there or not), every cut of
    /// the frame, and the Destination Options length field at every value: never a trap, never
    /// a segment (there is no TCP header in these bytes).
    @Test func everyPayloadLengthCutAndOptionLengthAroundIt() {
        let decoder = FrameDecoder()
        var frame = Self.issue16Frame
        var kinds: [String: Int] = [:]
        for plen in 0...65_535 {
            frame[18] = UInt8(plen >> 8)
            frame[19] = UInt8(plen & 0xff)
            let r = Self.decode(frame, decoder: decoder)
            guard case .failure(let skip) = r, skip != .fragmentHeld, skip != .notTCP else {
                Issue.record("payload length \(plen): \(r)")
                return
            }
            kinds[skipKind(skip), default: 0] += 1
        }
        // Below 2,056 (Fragment 8 + DstOpts 2,048) the headers overrun the announced payload:
        // malformed. From 2,056 on they fit it, but not the 16 bytes captured: truncated.
        #expect(kinds["malformed"] == 2_056, "\(kinds)")
        #expect(kinds["truncated"] == 65_536 - 2_056, "\(kinds)")
        frame = Self.issue16Frame
        for cut in 0...frame.count {
            let r = Self.decode(Array(frame.prefix(cut)), decoder: decoder)
            guard case .failure(.truncated) = r else { Issue.record("cut at \(cut): \(r)"); return }
        }
        for length in 0...255 {
            frame[63] = UInt8(length)
            let r = Self.decode(frame, decoder: decoder)
            guard case .failure(.truncated) = r else { Issue.record("DstOpts length \(length): \(r)"); return }
        }
    }

    /// The real (non-atomic) fragment of the same shape is held whole or reported, and a second
    /// Fragment header inside the reassembled datagram is malformed, not followed.
    @Test func nestedFragmentHeadersAreMalformed() {
        let decoder = FrameDecoder()
        // Ethernet + IPv6 (payload 8 + 16) + Fragment (offset 0, M = 0: atomic) + Fragment (offset 0, M = 1)
        // + 8 bytes + ... : an atomic one followed by a real one is a fragment to hold.
        var f = Array(Self.issue16Frame.prefix(54))
        f[18] = 0; f[19] = 8 + 8 + 8
        f += [44, 0, 0, 0, 0x16, 0x16, 0x16, 0x16]  // atomic, next: Fragment
        f += [6, 0, 0, 1, 0x17, 0x17, 0x17, 0x17]  // real, M = 1, next: TCP
        f += [UInt8](repeating: 0x41, count: 8)
        let held: DecodeSkip? = if case .failure(let e) = Self.decode(f, decoder: decoder) { e } else { nil }
        #expect(held == .fragmentHeld)
        // The datagram's own chain may not hold a Fragment header.
        let chain: [UInt8] = [6, 0, 0, 0, 1, 2, 3, 4] + [UInt8](repeating: 0, count: 20)
        chain.withWireBytes { w in
            let r = FrameDecoder.walkExtensionHeaders(w, announced: w.count, next: 44, fragmentHeaderAllowed: false)
            // An atomic Fragment header inside is passed over; a real one is refused.
            guard case .success(.upperLayer(6, 8)) = r else { Issue.record("\(r)"); return }
        }
        let real: [UInt8] = [6, 0, 0, 1, 1, 2, 3, 4] + [UInt8](repeating: 0, count: 20)
        real.withWireBytes { w in
            let r = FrameDecoder.walkExtensionHeaders(w, announced: w.count, next: 44, fragmentHeaderAllowed: false)
            guard case .failure(.malformed) = r else { Issue.record("\(r)"); return }
        }
    }

    /// A chain of 17 extension headers is refused before it is walked further (bounded work).
    @Test func longExtensionChainsAreMalformed() {
        var chain: [UInt8] = []
        for _ in 0..<17 { chain += [60, 0, 1, 4, 0, 0, 0, 0] }
        chain += [UInt8](repeating: 0, count: 20)
        chain.withWireBytes { w in
            let r = FrameDecoder.walkExtensionHeaders(w, announced: w.count, next: 60, fragmentHeaderAllowed: true)
            guard case .failure(.malformed(let why)) = r else { Issue.record("\(r)"); return }
            #expect(why.contains("longer than 16"))
        }
    }

    /// IPv4 fragments that would end past 65,535 bytes ("ping of death") are malformed and are
    /// not stored.
    @Test func ipv4FragmentsPastTheLargestDatagramAreMalformed() {
        var ip: [UInt8] = [0x45, 0, 0, 0, 0x12, 0x34, 0x1f, 0xff, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]
        let payload = [UInt8](repeating: 0x41, count: 16)
        ip[2] = 0; ip[3] = UInt8(20 + payload.count)
        let decoder = FrameDecoder()
        let r = Self.decode(ip + payload, linkType: 228, decoder: decoder)  // DLT_IPV4
        guard case .failure(.malformed(let why)) = r else { Issue.record("\(r)"); return }
        #expect(why.contains("beyond 65,535"))
        #expect(decoder.fragments.inProgress == 0)
    }
}

struct FragmentBoundsTests {
    /// IPv4 fragment of datagram `id`: 8 bytes at `offset`, More Fragments set.
    static func fragment(id: UInt16, offset: Int) -> [UInt8] {
        let field = UInt16(0x2000 | offset / 8)
        return [0x45, 0, 0, 28, UInt8(id >> 8), UInt8(id & 0xff), UInt8(field >> 8), UInt8(field & 0xff),
                64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2] + [UInt8](repeating: 0x41, count: 8)
    }

    /// A datagram left in more pieces than a real one ever is is dropped, not kept growing.
    @Test func aDatagramInTooManyPiecesIsDropped() {
        let decoder = FrameDecoder()
        let limit = decoder.fragments.limits.maxPieces
        for k in 0...limit {
            let f = Self.fragment(id: 7, offset: 16 * k)  // 8 bytes every 16: a hole after each piece
            _ = f.withUnsafeBytes { decoder.decode($0, linkType: 228, frame: FrameRef(input: 0, number: k + 1, time: .zero)) }
            #expect(decoder.fragments.inProgress == (k < limit ? 1 : 0), "after \(k + 1) pieces")
        }
        #expect(decoder.fragments.incompleteDropped == 1)
    }

    /// Datagrams that never complete are evicted oldest first, at the cap, however many come.
    @Test func aFloodOfIncompleteDatagramsStaysAtTheCap() {
        var limits = IPFragmentReassembler.Limits()
        limits.maxDatagrams = 16
        let decoder = FrameDecoder(fragmentLimits: limits)
        for id in 0..<5_000 {
            let f = Self.fragment(id: UInt16(id), offset: 0)
            _ = f.withUnsafeBytes { decoder.decode($0, linkType: 228, frame: FrameRef(input: 0, number: id + 1, time: .zero)) }
            #expect(decoder.fragments.inProgress == min(id + 1, 16))
        }
        #expect(decoder.fragments.incompleteDropped == 5_000 - 16)
        #expect(decoder.fragments.droppedFrames.first?.number == 1, "the oldest goes first")
        decoder.fragments.flush()
        #expect(decoder.fragments.inProgress == 0 && decoder.fragments.incompleteDropped == 5_000)
    }
}
