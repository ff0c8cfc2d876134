@testable import S2Dialback
import S2Model
import Testing

/// Closed connections leave the heap for a temporary file: what comes back must be what went in.
struct ConnectionArchiveTests {
    static func summary(_ id: Int, streams: Int) -> ConnectionSummary {
        let t = Timestamp(seconds: 1_700_000_000 + Int64(id), nanoseconds: Int32(id * 7))
        return ConnectionSummary(
            id: ConnectionID(id), input: id % 3, client: "[2001:db8::\(id)]:5\(id)", server: "192.0.2.\(id):5269",
            clientAddress: "2001:db8::\(id)", serverAddress: "192.0.2.\(id)",
            firstFrame: FrameRef(input: 0, number: id, time: t), lastFrame: FrameRef(input: 0, number: id + 9, time: t),
            closeFrame: id % 2 == 0 ? FrameRef(input: 1, number: id + 10, time: t) : nil,
            close: id % 2 == 0 ? "fin" : nil, tls: id % 3 == 0,
            streams: (0..<streams).map { k in
                StreamSummary(direction: k % 2 == 0 ? .clientToServer : .serverToClient,
                              to: k == 1 ? nil : "b\(id).example", from: "ä\u{202e}\(k)@\u{1b}x.example",
                              id: k % 2 == 1 ? "stream-\(id)-\(k)" : nil, version: k == 2 ? "" : "1.0", closed: k == 0)
            },
            hidden: id % 5 == 0, initiatorDamaged: id % 7 == 0, streamID: "stream-\(id)-1", initialTo: id % 4 == 0 ? nil : "b.example",
            sasl: (0..<(id % 3)).map { k in
                var n = SASLNegotiation(mechanism: k == 0 ? "EXTERNAL" : "X-\u{1b}", initialResponse: k == 0 ? "YS5leGFtcGxl" : nil,
                                        authzid: k == 0 ? "a.example" : nil, malformedResponse: k == 1, initiating: "a\(id).example",
                                        receiving: k == 1 ? nil : "b.example", offered: Array(repeating: "EXTERNAL", count: k + 1),
                                        overTLS: k == 0, authFrame: FrameRef(input: 0, number: id + k, time: t),
                                        streamIDBefore: "s\(k)", streamIDAfter: k == 0 ? "t\(k)" : nil)
                n.outcome = k == 0 ? .success : .failure
                n.condition = k == 0 ? nil : "not-authorized"
                n.outcomeFrame = k == 0 ? FrameRef(input: 0, number: id + k + 1, time: t) : nil
                return n
            },
            facts: facts(id))
    }

    static func facts(_ id: Int) -> ConnectionFacts {
        var f = ConnectionFacts()
        f.featuresBeforeTLS = id % 2 == 0
        f.featuresInTLS = id % 3 == 0
        f.startTLSOffered = id % 4 < 2
        f.startTLSRequired = id % 4 == 0
        f.dialbackOffered = id % 5 != 0
        f.dialbackErrorsOffered = id % 6 == 0
        f.bidiOffered = id % 7 < 3
        f.bidiRequested = id % 7 == 1
        f.mechanisms = Array(["EXTERNAL", "X-\u{1b}ä"].prefix(id % 3))
        f.sentDialbackError = PerDirection(id % 2 == 1, id % 9 == 0)
        f.stanzas = PerDirection(id * 1000, id)
        f.stanzaDomains = PerDirection(Array(["a.example", "\u{202e}b.example"].prefix(id % 3)), id % 2 == 0 ? ["c\(id).example"] : [])
        return f
    }

    static func same(_ a: ConnectionSummary, _ b: ConnectionSummary) -> Bool {
        a.id == b.id && a.input == b.input && a.client == b.client && a.server == b.server
            && a.clientAddress == b.clientAddress && a.serverAddress == b.serverAddress && a.firstFrame == b.firstFrame
            && a.lastFrame == b.lastFrame && a.closeFrame == b.closeFrame && a.close == b.close && a.tls == b.tls
            && a.hidden == b.hidden && a.initiatorDamaged == b.initiatorDamaged && a.streamID == b.streamID
            && a.initialTo == b.initialTo && a.streams.count == b.streams.count
            && a.sasl == b.sasl && a.facts == b.facts
            && zip(a.streams, b.streams).allSatisfy {
                $0.direction == $1.direction && $0.to == $1.to && $0.from == $1.from && $0.id == $1.id
                    && $0.version == $1.version && $0.closed == $1.closed
            }
    }

    @Test(arguments: [true, false])
    func roundTripInIDOrder(spill: Bool) {
        let archive = ConnectionArchive(spill: spill)
        // Connections close in another order than they opened.
        let ids = [7, 3, 12, 1, 9, 4, 10, 2]
        for id in ids { archive.append(Self.summary(id, streams: id % 5)) }
        #expect(archive.count == ids.count)
        let list = ConnectionList(archive: archive)
        #expect(list.map(\.id.value) == ids.sorted())
        for s in list { #expect(Self.same(s, Self.summary(s.id.value, streams: s.id.value % 5)), "C\(s.id.value)") }
        #expect(archive.summary(of: ConnectionID(99)) == nil)
        #expect(archive.summary(of: ConnectionID(12)).map { Self.same($0, Self.summary(12, streams: 2)) } == true)
    }

    @Test func readsInterleaveWithWrites() {
        let archive = ConnectionArchive()
        archive.append(Self.summary(1, streams: 2))
        #expect(archive.summary(of: ConnectionID(1))?.streams.count == 2)
        archive.append(Self.summary(2, streams: 4))
        #expect(archive.summary(of: ConnectionID(2))?.streams.count == 4)
        #expect(archive.summary(of: ConnectionID(1))?.client == "[2001:db8::1]:51")
    }
}
