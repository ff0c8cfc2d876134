import S2Model

/// Settled dialback exchanges of an offline run, kept for the report outside the heap.
///
/// An offline report lists every exchange, so memory would grow with the capture (about 1.8 KB
/// per exchange with its steps). An exchange is written here once nothing but a rare late
/// db:verify can change it (see `DialbackModel.retire`), and read back — paged in — if one does.
/// Like `ConnectionArchive`: an anonymous temporary file, random access; without a file the
/// exchange stays in memory.
final class ExchangeArchive {
    private let file = RecordFile()
    private let offsets = RecordOffsets(onDisk: true)
    private var scratch: [UInt8] = []

    var count: Int { offsets.count }

    /// Writes `x`; false when it cannot (no temporary file, disk full): the caller keeps it.
    func append(_ x: DialbackExchange) -> Bool {
        scratch.removeAll(keepingCapacity: true)
        ExchangeCoder.encode(x, into: &scratch)
        guard let w = file.append(scratch) else { return false }
        offsets[x.number] = w
        return true
    }

    /// A new object with what was written for exchange `number`.
    func exchange(_ number: Int) -> DialbackExchange? {
        guard let w = offsets[number], let bytes = file.read(w) else { return nil }
        return ExchangeCoder.decode(bytes)
    }

    /// The record of `number` no longer speaks for it (the exchange is back in memory).
    func remove(_ number: Int) { offsets[number] = nil }

    var numbers: [Int] { offsets.numbers }
}

/// The binary form of an exchange, with ConnectionArchive's integers, strings and frames.
enum ExchangeCoder {
    static func encode(_ x: DialbackExchange, into o: inout [UInt8]) {
        typealias C = ArchiveCoder
        C.int(x.number, &o)
        C.str(x.originating, &o)
        C.str(x.receiving, &o)
        C.opt(x.streamID, &o)
        C.str(x.key, &o)
        C.int(x.resultConnection.value, &o)
        C.frame(x.resultFrame, &o)
        o.append(UInt8(x.resultDirection.rawValue))
        C.int(x.verifyConnection?.value ?? -1, &o)
        C.frame(x.verifyFrame, &o)
        C.opt(x.verifyKey, &o)
        C.opt(x.verifyStreamID, &o)
        C.frame(x.verifyReplyFrame, &o)
        C.opt(x.verifyType, &o)
        C.frame(x.resultReplyFrame, &o)
        C.opt(x.outcome, &o)
        C.str(x.originatingAddress, &o)
        C.str(x.receivingAddress, &o)
        C.opt(x.authoritativeAddress, &o)
        C.int(x.steps.count, &o)
        for s in x.steps {
            C.str(s.kind.rawValue, &o)
            C.int(s.connection.value, &o)
            o.append(UInt8(s.direction.rawValue) | (s.carriesID ? 2 : 0) | (s.carriesKey ? 4 : 0))
            C.frame(s.frame, &o)
            C.opt(s.type, &o)
            C.str(s.summary, &o)
        }
    }

    static func decode(_ b: [UInt8]) -> DialbackExchange? {
        b.withWireBytes { w in
            var r = ArchiveCoder.Reader(wire: WireReader(w))
            return decode(&r)
        }
    }

    private static func decode(_ r: inout ArchiveCoder.Reader) -> DialbackExchange? {
        guard let number = r.int(), let originating = r.str(), let receiving = r.str(), let streamID = r.opt(),
              let key = r.str(), let resultConnection = r.int(), let resultFrame = r.frame(),
              let d = r.byte(), let resultDirection = Direction(rawValue: Int(d)),
              let verifyConnection = r.int(), let verifyFrame = r.optFrame(), let verifyKey = r.opt(),
              let verifyStreamID = r.opt(), let verifyReplyFrame = r.optFrame(), let verifyType = r.opt(),
              let resultReplyFrame = r.optFrame(), let outcome = r.opt(), let originatingAddress = r.str(),
              let receivingAddress = r.str(), let authoritativeAddress = r.opt(), let n = r.int(), n >= 0, n < 1 << 16
        else { return nil }
        let x = DialbackExchange(number: number, originating: originating, receiving: receiving, streamID: streamID,
                                 key: key, resultConnection: ConnectionID(resultConnection), resultFrame: resultFrame,
                                 resultDirection: resultDirection, originatingAddress: originatingAddress,
                                 receivingAddress: receivingAddress)
        x.verifyConnection = verifyConnection < 0 ? nil : ConnectionID(verifyConnection)
        x.verifyFrame = verifyFrame
        x.verifyKey = verifyKey
        x.verifyStreamID = verifyStreamID
        x.verifyReplyFrame = verifyReplyFrame
        x.verifyType = verifyType
        x.resultReplyFrame = resultReplyFrame
        x.outcome = outcome
        x.authoritativeAddress = authoritativeAddress
        x.steps.reserveCapacity(n)
        for _ in 0..<n {
            guard let kind = r.str().flatMap(DialbackStep.Kind.init(rawValue:)), let connection = r.int(), let bits = r.byte(),
                  let direction = Direction(rawValue: Int(bits & 1)), let frame = r.frame(), let type = r.opt(),
                  let summary = r.str()
            else { return nil }
            x.steps.append(DialbackStep(kind: kind, connection: ConnectionID(connection), direction: direction, frame: frame,
                                        type: type, summary: summary, carriesID: bits & 2 != 0, carriesKey: bits & 4 != 0))
        }
        return x
    }
}

/// The dialback exchanges of a report in number order: archived ones are read back one at a
/// time, so that writing the report of a huge capture does not hold them all at once.
public struct ExchangeList: RandomAccessCollection, ExpressibleByArrayLiteral, Sendable {
    private enum Entry: Sendable {
        case held(DialbackExchange)
        case archived(Int)
        var number: Int {
            switch self {
            case .held(let x): x.number
            case .archived(let n): n
            }
        }
    }
    private let entries: [Entry]
    private let archive: ArchiveReference<ExchangeArchive>?

    public init(_ exchanges: [DialbackExchange] = []) {
        entries = exchanges.map { .held($0) }
        archive = nil
    }

    public init(arrayLiteral elements: DialbackExchange...) { self.init(elements) }

    init(held: [DialbackExchange], archive: ExchangeArchive) {
        let all = held.map { Entry.held($0) } + archive.numbers.map { Entry.archived($0) }
        entries = all.sorted { $0.number < $1.number }
        self.archive = archive.count == 0 ? nil : ArchiveReference(archive)
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { entries.count }

    /// How many of these exchanges are read back from the archive rather than held in memory.
    public var archivedCount: Int {
        entries.reduce(0) { n, e in if case .archived = e { return n + 1 }; return n }
    }

    public subscript(i: Int) -> DialbackExchange {
        switch entries[i] {
        case .held(let x): return x
        case .archived(let n):
            if let x = archive?.archive.exchange(n) { return x }
            // The temporary file failed under us: say so in the record rather than stop the report.
            let none = FrameRef(input: 0, number: 0, time: .zero)
            return DialbackExchange(number: n, originating: "?", receiving: "?", streamID: nil, key: "",
                                    resultConnection: ConnectionID(0), resultFrame: none, resultDirection: .clientToServer,
                                    originatingAddress: "?", receivingAddress: "?")
        }
    }
}
