import Foundation
import S2Capture
import S2Model
import S2Reassembly
import S2Synth
import S2Wire
import S2TestSupport
import Testing

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Collects what the reassembler delivers: per connection and direction, data pieces and gaps.
final class Collector: ReassemblySink {
    enum Piece: Equatable { case bytes([UInt8]), gap(UInt64) }
    struct Conn {
        var c: TCPConnection
        var streams: [[Piece]] = [[], []]
        var nextOffset: [UInt64] = [0, 0]
        var closed = false
    }
    var conns: [Conn] = []
    var anomalies: [Anomaly] = []
    var offsetErrors = 0

    func index(_ c: TCPConnection) -> Int { conns.firstIndex { $0.c === c }! }

    func connectionOpened(_ c: TCPConnection) { conns.append(Conn(c: c)) }
    func streamData(_ c: TCPConnection, _ d: Direction, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef) {
        let i = index(c)
        if offset != conns[i].nextOffset[d.rawValue] { offsetErrors += 1 }
        conns[i].nextOffset[d.rawValue] = offset + UInt64(bytes.count)
        if case .bytes(let b)? = conns[i].streams[d.rawValue].last {
            conns[i].streams[d.rawValue][conns[i].streams[d.rawValue].count - 1] = .bytes(b + Array(bytes))
        } else {
            conns[i].streams[d.rawValue].append(.bytes(Array(bytes)))
        }
    }
    func streamGap(_ c: TCPConnection, _ d: Direction, at offset: UInt64, length: UInt64, frame: FrameRef) {
        let i = index(c)
        if offset != conns[i].nextOffset[d.rawValue] { offsetErrors += 1 }
        conns[i].nextOffset[d.rawValue] = offset + length
        conns[i].streams[d.rawValue].append(.gap(length))
    }
    func connectionClosed(_ c: TCPConnection) { conns[index(c)].closed = true }
    func anomaly(_ a: Anomaly) { anomalies.append(a) }

    func bytes(_ i: Int, _ d: Direction) -> [UInt8] {
        conns[i].streams[d.rawValue].flatMap { if case .bytes(let b) = $0 { return b } else { return [] } }
    }
}

func reassemble(frames: [(bytes: [UInt8], time: Timestamp)], limits: ReassemblyLimits = .init()) -> Collector {
    let sink = Collector()
    let r = TCPReassembler(limits: limits, sink: sink, isServerPort: { $0 == 5269 })
    let decoder = FrameDecoder()
    for (n, f) in frames.enumerated() {
        f.bytes.withUnsafeBytes { b in
            if case .success(let s) = decoder.decode(b, linkType: 1, frame: FrameRef(input: 0, number: n + 1, time: f.time)) { r.process(s) }
        }
    }
    r.finish()
    return sink
}

func reassemble(file: String) throws -> Collector {
    let reader = try PcapFileReader(path: file, inputIndex: 0)
    let sink = Collector()
    let r = TCPReassembler(sink: sink, isServerPort: { $0 == 5269 })
    let decoder = FrameDecoder()
    _ = reader.read { p in
        if case .success(let s) = decoder.decode(p.bytes, linkType: p.linkType, frame: p.frame) { r.process(s) }
        return true
    }
    r.finish()
    return sink
}

struct ReassemblyPropertyTests {
    /// One direction of data cut into random segments, shuffled within a window, with duplicates
    /// (including re-cut retransmissions of identical bytes), across the 2^32 wrap.
    static func scenario(seed: UInt64) -> (data: [UInt8], frames: [(bytes: [UInt8], time: Timestamp)]) {
        var rng = SplitMix(state: seed)
        let size = Int.random(in: 1...6000, using: &rng)
        let data = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let src = PacketBuilder.addressBytes("10.1.0.1"), dst = PacketBuilder.addressBytes("10.1.0.2")
        // Every third seed starts right below the wrap.
        let isn: UInt32 = seed % 3 == 0 ? UInt32.max - UInt32.random(in: 0...3000, using: &rng) : UInt32.random(in: 0...UInt32.max, using: &rng)
        let sisn: UInt32 = 77
        var t = Timestamp(seconds: 1_000, nanoseconds: 0)
        func frame(_ seq: UInt32, _ flags: UInt8, _ payload: ArraySlice<UInt8>, fromClient: Bool = true, ack: UInt32 = 0) -> (bytes: [UInt8], time: Timestamp) {
            t = t.adding(seconds: 0.001)
            return fromClient
                ? (PacketBuilder.tcpFrame(src: src, dst: dst, sport: 40000, dport: 5269, seq: seq, ack: ack, flags: flags, payload: payload), t)
                : (PacketBuilder.tcpFrame(src: dst, dst: src, sport: 5269, dport: 40000, seq: seq, ack: ack, flags: flags, payload: payload), t)
        }
        var segments: [(Int, Int)] = []
        var i = 0
        while i < data.count {
            let n = Int.random(in: 1...min(1460, data.count - i), using: &rng)
            segments.append((i, n))
            i += n
        }
        // Duplicates: some identical, some re-cut differently over the same bytes.
        var extra: [(Int, Int)] = []
        for _ in 0..<Int.random(in: 0...6, using: &rng) where !data.isEmpty {
            let a = Int.random(in: 0..<data.count, using: &rng)
            extra.append((a, Int.random(in: 1...min(900, data.count - a), using: &rng)))
        }
        var order = segments + extra
        // Reorder within a window of 5.
        for j in order.indices {
            let k = min(order.count - 1, j + Int.random(in: 0...4, using: &rng))
            order.swapAt(j, k)
        }
        var frames = [frame(isn, 0x02, []), frame(sisn, 0x12, [], fromClient: false, ack: isn &+ 1), frame(isn &+ 1, 0x10, [], ack: sisn &+ 1)]
        for (a, n) in order { frames.append(frame(isn &+ 1 &+ UInt32(a), 0x18, data[a..<(a + n)], ack: sisn &+ 1)) }
        frames.append(frame(isn &+ 1 &+ UInt32(data.count), 0x11, [], ack: sisn &+ 1))
        frames.append(frame(sisn &+ 1, 0x11, [], fromClient: false, ack: isn &+ 2 &+ UInt32(data.count)))
        return (data, frames)
    }

    @Test(arguments: 0..<200)
    func anySegmentationReorderingAndDuplicationReassemblesExactly(_ seed: Int) {
        let s = Self.scenario(seed: UInt64(seed) &* 7919 &+ 1)
        let got = reassemble(frames: s.frames)
        #expect(got.conns.count == 1)
        #expect(got.bytes(0, .clientToServer) == s.data, "seed \(seed)")
        #expect(got.anomalies.isEmpty, "seed \(seed): \(got.anomalies.map(\.message))")
        #expect(got.offsetErrors == 0)
        #expect(got.conns.first?.c.closeReason == .fin)
    }

    @Test func oneByteSegmentsInReverseOrderWithinWindow() {
        let data = Array("<db:result from='a.example' to='b.example'>k</db:result>".utf8)
        let src = PacketBuilder.addressBytes("10.1.0.1"), dst = PacketBuilder.addressBytes("10.1.0.2")
        var frames: [(bytes: [UInt8], time: Timestamp)] = [(PacketBuilder.tcpFrame(src: src, dst: dst, sport: 1, dport: 5269, seq: 0xFFFF_FFF0, ack: 0, flags: 2, payload: []), Timestamp(seconds: 1, nanoseconds: 0))]
        for i in stride(from: data.count - 1, through: 0, by: -1) {
            frames.append((PacketBuilder.tcpFrame(src: src, dst: dst, sport: 1, dport: 5269, seq: 0xFFFF_FFF1 &+ UInt32(i), ack: 0, flags: 0x18, payload: data[i...i]), Timestamp(seconds: 1, nanoseconds: Int32(i))))
        }
        let got = reassemble(frames: frames)
        #expect(got.bytes(0, .clientToServer) == data)
        // Only one direction was seen: that is the one anomaly.
        #expect(got.anomalies.map(\.kind) == [.oneSided])
    }
}

struct ReassemblyFixtureTests {
    static let fixtures: [String] = {
        let dir = repoRoot.appendingPathComponent("fixtures/reassembly")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".expected.json") }.map { String($0.dropLast(".expected.json".count)) }.sorted()
    }()

    @Test func everyHardCaseHasAFixture() {
        for n in ["overlap-conflict", "gap-leading", "gap-middle", "midstream", "one-sided", "rst-with-payload",
                  "port-reuse", "seq-wrap", "fin-retransmit", "retransmit-recut", "out-of-order"] {
            #expect(Self.fixtures.contains(n), "missing reassembly fixture \(n)")
        }
    }

    static func pieces(_ list: [[String: Any]]) -> [Collector.Piece] {
        list.map { p in
            if let h = p["hex"] as? String {
                var b: [UInt8] = []
                var i = h.startIndex
                while i < h.endIndex { let j = h.index(i, offsetBy: 2); b.append(UInt8(h[i..<j], radix: 16)!); i = j }
                return .bytes(b)
            }
            return .gap(UInt64(p["gap"] as! Int))
        }
    }

    @Test(arguments: fixtures)
    func deliversExpectedStreamsAndAnomalies(_ name: String) throws {
        let dir = repoRoot.appendingPathComponent("fixtures/reassembly")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("\(name).expected.json"))) as! [String: Any]
        let got = try reassemble(file: dir.appendingPathComponent(json["file"] as! String).path)
        let conns = json["connections"] as! [[String: Any]]
        #expect(got.conns.count == conns.count, "\(name): connections")
        for (i, e) in conns.enumerated() where i < got.conns.count {
            let c = got.conns[i]
            #expect(c.c.client.description == e["client"] as! String, "\(name)")
            #expect(c.c.server.description == e["server"] as! String, "\(name)")
            #expect(c.streams[0] == Self.pieces(e["client_to_server"] as! [[String: Any]]), "\(name) c2s")
            #expect(c.streams[1] == Self.pieces(e["server_to_client"] as! [[String: Any]]), "\(name) s2c")
            let close = e["close"] as! String
            let reason = c.c.closeReason
            #expect((close == "fin" && reason == .fin) || (close == "rst" && reason == .rst) || (close == "open" && (reason == .open || reason == .reused)),
                    "\(name): close \(String(describing: reason)) expected \(close)")
        }
        var expected: [String: Int] = [:]
        for a in json["anomalies"] as! [[String: Any]] {
            let key = "\(a["kind"]!)#\(a["connection"]!)#\(a["direction"] as? String ?? "-")"
            expected[key, default: 0] += a["count"] as! Int
        }
        var actual: [String: Int] = [:]
        for a in got.anomalies {
            let ci = got.conns.firstIndex { $0.c.id == a.connection } ?? -1
            let dir = (a.kind == .oneSided || a.kind == .midstreamPickup) ? "-" : (a.direction?.reportName ?? "-")
            actual["\(a.kind.rawValue)#\(ci)#\(dir)", default: 0] += 1
        }
        #expect(actual == expected, "\(name): anomalies")
        #expect(got.offsetErrors == 0)
    }
}

struct ReassemblyLimitTests {
    final class CountingSink: ReassemblySink {
        var opened = 0, closed = 0, limitAnomalies = 0, anomalies = 0
        func connectionOpened(_ c: TCPConnection) { opened += 1 }
        func streamData(_ c: TCPConnection, _ d: Direction, _ b: UnsafeRawBufferPointer, at o: UInt64, frame: FrameRef) {}
        func streamGap(_ c: TCPConnection, _ d: Direction, at o: UInt64, length: UInt64, frame: FrameRef) {}
        func connectionClosed(_ c: TCPConnection) { closed += 1 }
        func anomaly(_ a: Anomaly) { anomalies += 1; if a.kind == .limitReached { limitAnomalies += 1 } }
    }

    @Test func millionSynFloodStaysWithinTheConnectionCap() {
        var limits = ReassemblyLimits()
        limits.maxConnections = 50_000
        let sink = CountingSink()
        let r = TCPReassembler(limits: limits, sink: sink, isServerPort: { $0 == 5269 })
        let server = Endpoint(address: IPAddress(ipv4: 0x0A00_0002), port: 5269)
        [UInt8]().withUnsafeBytes { empty in
            for i in 0..<1_000_000 {
                let src = Endpoint(address: IPAddress(ipv4: 0x0B00_0000 | UInt32(i >> 8)), port: UInt16(1024 + (i & 0xff)))
                let t = Timestamp(seconds: 1_000 + Int64(i / 10_000), nanoseconds: Int32(i % 10_000) * 1000)
                r.process(TCPSegment(source: src, destination: server, sequence: UInt32(i), acknowledgment: 0, flags: .syn, window: 1024,
                                     payload: empty, payloadLength: 0, frame: FrameRef(input: 0, number: i + 1, time: t)))
                #expect(r.activeConnections <= limits.maxConnections)
            }
        }
        r.finish()
        #expect(sink.opened == 1_000_000)
        #expect(sink.closed == 1_000_000)
        #expect(r.statistics.connectionsEvicted == 1_000_000 - 50_000)
        #expect(sink.limitAnomalies == 1, "the table limit is reported once, then counted")
        // Memory is bounded by the table cap (asserted on every packet above); the binary's peak
        // RSS on a SYN flood is measured out of process in HostileInputTests (tests here run in
        // parallel, so this process's peak says little).
    }

    /// The queue the eviction walks is in the order connections were queued. Connections active
    /// since they were queued go behind the newest one; the newest, in its handshake and not active
    /// since it opened, was then taken for the least recently active and closed (a memory budget
    /// reached every ~12,000 connections of the header flood closed the connection being opened,
    /// whose next packet then began a one-sided connection). The oldest goes first.
    @Test func evictionClosesTheLeastRecentlyActiveNotTheNewest() {
        final class ClosedOrder: ReassemblySink {
            var closed: [Int] = []
            func connectionOpened(_ c: TCPConnection) {}
            func streamData(_ c: TCPConnection, _ d: Direction, _ b: UnsafeRawBufferPointer, at o: UInt64, frame: FrameRef) {}
            func streamGap(_ c: TCPConnection, _ d: Direction, at o: UInt64, length: UInt64, frame: FrameRef) {}
            func connectionClosed(_ c: TCPConnection) { closed.append(c.id.value) }
            func anomaly(_ a: Anomaly) {}
        }
        let sink = ClosedOrder()
        let r = TCPReassembler(sink: sink, isServerPort: { $0 == 5269 })
        let server = Endpoint(address: IPAddress(ipv4: 0x0A00_0002), port: 5269)
        var frame = 0
        func segment(_ client: Int, _ flags: TCPFlags, sequence: UInt32) {
            frame += 1
            let src = Endpoint(address: IPAddress(ipv4: 0x0B00_0000 | UInt32(client)), port: 40000)
            [UInt8]().withUnsafeBytes { empty in
                r.process(TCPSegment(source: src, destination: server, sequence: sequence, acknowledgment: 0, flags: flags, window: 1024,
                                     payload: empty, payloadLength: 0,
                                     frame: FrameRef(input: 0, number: frame, time: Timestamp(seconds: 1_000, nanoseconds: Int32(frame) * 1000))))
            }
        }
        // Connections 1-3 each open and stay active after that; connection 4 has only opened.
        for c in 1...3 {
            segment(c, .syn, sequence: 100)
            segment(c, .ack, sequence: 101)
        }
        segment(4, .syn, sequence: 100)
        #expect(r.evictLeastRecentlyActive(frame: FrameRef(input: 0, number: frame, time: Timestamp(seconds: 1_000, nanoseconds: 0))))
        #expect(sink.closed == [1])
        r.evictLeastRecentlyActive(frame: FrameRef(input: 0, number: frame, time: Timestamp(seconds: 1_000, nanoseconds: 0)))
        #expect(sink.closed == [1, 2])
    }

    /// Acknowledgments that each jump 2^31 - 1 bytes ahead turn into gaps that move the stream's
    /// offset; past `maxStreamOffset` the connection ends (with the default of 2^62 that takes 2^31
    /// packets, so the bound is lowered here). Without it the 64-bit offsets would overflow after
    /// about 2^32 such packets — a trap, at line rate within the hour.
    @Test func acknowledgmentsFarAheadEndTheConnectionBeforeOffsetsOverflow() {
        var limits = ReassemblyLimits()
        limits.maxStreamOffset = 1 << 34
        let sink = Collector()
        let r = TCPReassembler(limits: limits, sink: sink, isServerPort: { $0 == 5269 })
        let client = Endpoint(address: IPAddress(ipv4: 0x0A00_0001), port: 40000)
        let server = Endpoint(address: IPAddress(ipv4: 0x0A00_0002), port: 5269)
        var n = 0
        func send(_ fromClient: Bool, seq: UInt32, ack: UInt32, _ flags: TCPFlags) {
            n += 1
            [UInt8]().withUnsafeBytes { empty in
                r.process(TCPSegment(source: fromClient ? client : server, destination: fromClient ? server : client,
                                     sequence: seq, acknowledgment: ack, flags: flags, window: 65535, payload: empty,
                                     payloadLength: 0, frame: FrameRef(input: 0, number: n, time: Timestamp(seconds: 1, nanoseconds: Int32(n)))))
            }
        }
        send(true, seq: 100, ack: 0, .syn)
        send(false, seq: 5000, ack: 101, [.syn, .ack])
        var ack: UInt32 = 5001
        for _ in 0..<20 {
            ack = ack &+ 0x7fff_fffe
            send(true, seq: 101, ack: ack, .ack)
        }
        #expect(sink.offsetErrors == 0)
        #expect(sink.conns.count >= 2, "the connection ended and the next packet opened a new one")
        #expect(sink.conns[0].closed && sink.conns[0].c.closeReason == .evicted)
        #expect(sink.conns[0].nextOffset[1] > 1 << 34 && sink.conns[0].nextOffset[1] < (1 << 34) + (1 << 32))
        #expect(sink.anomalies.contains { $0.kind == .limitReached && $0.message.contains("stream offsets passed") })
        r.finish()
    }

    /// A loaded sensor dropped the SYN-ACK, the handshake's ACK, the initiator's header and the
    /// acceptor's first bytes. The initiator's next segment acknowledges acceptor data already
    /// sent: that acknowledgment names a point inside the acceptor's stream, not its start, so the
    /// acceptor's direction must count as picked up mid-stream (its first bytes seen are not
    /// parsed as the beginning of a stream). The handshake's own ACK still names it.
    @Test(arguments: [false, true])
    func onlyTheHandshakeAcknowledgmentNamesWhereTheAcceptorBegan(_ handshakeAckSeen: Bool) {
        let sink = Collector()
        let r = TCPReassembler(sink: sink, isServerPort: { $0 == 5269 })
        let client = Endpoint(address: IPAddress(ipv4: 0x0A00_0001), port: 40000)
        let server = Endpoint(address: IPAddress(ipv4: 0x0A00_0002), port: 5269)
        var n = 0
        func send(_ fromClient: Bool, seq: UInt32, ack: UInt32, _ flags: TCPFlags, _ text: String = "") {
            n += 1
            let payload = Array(text.utf8)
            payload.withUnsafeBytes { p in
                r.process(TCPSegment(source: fromClient ? client : server, destination: fromClient ? server : client,
                                     sequence: seq, acknowledgment: ack, flags: flags, window: 65535, payload: p,
                                     payloadLength: payload.count, frame: FrameRef(input: 0, number: n, time: Timestamp(seconds: 1, nanoseconds: Int32(n)))))
            }
        }
        send(true, seq: 100, ack: 0, .syn)
        if handshakeAckSeen { send(true, seq: 101, ack: 5001, .ack) }
        // dropped: SYN-ACK (seq 5000), the client's header at 101, the server's header at 5001 (200 bytes)
        send(true, seq: 301, ack: 5201, [.ack, .psh], "<db:result from='a.example' to='b.example'>k</db:result>")
        send(false, seq: 5201, ack: 357, [.ack, .psh], "<db:result from='b.example' to='a.example' type='valid'/>")
        #expect(sink.conns.count == 1)
        let c = sink.conns[0].c
        #expect(c.streamStartSeen(.clientToServer), "the SYN names where the initiator began")
        #expect(c.streamStartSeen(.serverToClient) == handshakeAckSeen)
        if handshakeAckSeen {
            // the acceptor's lost header is a hole at its start
            #expect(sink.conns[0].streams[1].first == .gap(200))
        } else {
            #expect(sink.conns[0].streams[1].first == .bytes(Array("<db:result from='b.example' to='a.example' type='valid'/>".utf8)))
        }
        r.finish()
    }

    @Test func outOfOrderBufferIsBoundedAndTheHoleBecomesAGap() {
        var limits = ReassemblyLimits()
        limits.maxOutOfOrderBytesPerDirection = 4096
        let src = PacketBuilder.addressBytes("10.1.0.1"), dst = PacketBuilder.addressBytes("10.1.0.2")
        var frames: [(bytes: [UInt8], time: Timestamp)] = [(PacketBuilder.tcpFrame(src: src, dst: dst, sport: 1, dport: 5269, seq: 0, ack: 0, flags: 2, payload: []), Timestamp(seconds: 1, nanoseconds: 0))]
        // Byte 1 (offset 0) never comes; 10 segments of 1000 bytes follow it.
        let chunk = [UInt8](repeating: 0x41, count: 1000)
        for i in 0..<10 {
            frames.append((PacketBuilder.tcpFrame(src: src, dst: dst, sport: 1, dport: 5269, seq: 2 + UInt32(i * 1000), ack: 0, flags: 0x18, payload: chunk[...]), Timestamp(seconds: 1, nanoseconds: Int32(i + 1))))
        }
        let got = reassemble(frames: frames, limits: limits)
        #expect(got.anomalies.contains { $0.kind == .limitReached })
        #expect(got.anomalies.contains { $0.kind == .gap && $0.bytes == 1 })
        #expect(got.bytes(0, .clientToServer).count == 10_000)
    }
}
