#if canImport(Glibc)
import Glibc
#endif
import S2Model

/// Closed connections of an offline run, kept for the report outside the heap.
///
/// An offline report lists every connection, so memory would grow with the capture. Each
/// closed connection is written once, in a compact binary form, to an anonymous temporary file
/// (`tmpfile`: gone when the process ends), and only its offset stays in memory — about 40 bytes
/// per connection instead of a summary's ~1–2 KB. Reading back is random access (`pread`).
/// When no temporary file can be made, summaries stay in memory: slower to grow, never lost.
public final class ConnectionArchive {
    private let file: RecordFile?
    private let offsets: RecordOffsets
    private var inMemory: [ConnectionID: ConnectionSummary] = [:]
    private var scratch: [UInt8] = []

    public init(spill: Bool = true) {
        file = spill ? RecordFile() : nil
        offsets = RecordOffsets(onDisk: spill)
    }

    public var count: Int { offsets.count + inMemory.count }

    /// XMPP streams of every archived connection: counted as they come, so the report's total
    /// does not read the archive back.
    public private(set) var streamCount = 0

    public func append(_ s: ConnectionSummary) {
        streamCount += s.streams.count
        scratch.removeAll(keepingCapacity: true)
        if file != nil { ArchiveCoder.encode(s, into: &scratch) }
        // No file, or the disk is full: kept here rather than lost.
        guard let w = file?.append(scratch) else {
            inMemory[s.id] = s
            return
        }
        offsets[s.id.value] = w
    }

    public func summary(of id: ConnectionID) -> ConnectionSummary? {
        if let s = inMemory[id] { return s }
        guard let w = offsets[id.value], let bytes = file?.read(w) else { return nil }
        return ArchiveCoder.decode(bytes)
    }

    /// Every archived connection's ID, ascending.
    public var ids: [ConnectionID] { (offsets.numbers.map(ConnectionID.init) + inMemory.keys).sorted() }
}

/// An anonymous temporary file of records (in `$TMPDIR`, gone when the process ends), each written
/// once and read back at random (`pread`): what keeps the offline report's history out of the heap.
/// It is made at the first record (most analyzers, in tests, never write one).
final class RecordFile {
    typealias Record = (offset: Int64, length: Int)
    private var file: UnsafeMutablePointer<FILE>?
    private var opened = false
    private var writable = true
    private var size: Int64 = 0
    /// Where the file goes (nil: `$TMPDIR`).
    private let directory: String?

    init(directory: String? = nil) { self.directory = directory }

    deinit { if let file { fclose(file) } }

    /// Where `bytes` went; nil when no temporary file can be made or the disk is full (then
    /// nothing more is written; a partial record may sit at the end, the ones before stay readable).
    func append(_ bytes: [UInt8]) -> Record? {
        if !opened {
            opened = true
            file = anonymousTemporaryFile(in: directory)
        }
        guard let file, writable else { return nil }
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        guard written == bytes.count else {
            writable = false
            return nil
        }
        defer { size += Int64(bytes.count) }
        return (size, bytes.count)
    }

    func read(_ r: Record) -> [UInt8]? {
        guard let file else { return nil }
        fflush(file)
        var bytes = [UInt8](repeating: 0, count: r.length)
        let n = bytes.withUnsafeMutableBytes { pread(fileno(file), $0.baseAddress, r.length, off_t(r.offset)) }
        return n == r.length ? bytes : nil
    }
}

/// The binary form of a summary: integers little-endian, strings length-prefixed UTF-8.
enum ArchiveCoder {
    static func encode(_ s: ConnectionSummary, into o: inout [UInt8]) {
        int(s.id.value, &o)
        int(s.input, &o)
        str(s.client, &o)
        str(s.server, &o)
        str(s.clientAddress, &o)
        str(s.serverAddress, &o)
        frame(s.firstFrame, &o)
        frame(s.lastFrame, &o)
        frame(s.closeFrame, &o)
        opt(s.close, &o)
        o.append((s.tls ? 1 : 0) | (s.hidden ? 2 : 0) | (s.initiatorDamaged ? 4 : 0)
                 | (s.pickedUp.clientToServer ? 8 : 0) | (s.pickedUp.serverToClient ? 16 : 0))
        opt(s.streamID, &o)
        opt(s.initialTo, &o)
        int(s.streams.count, &o)
        for st in s.streams {
            o.append((st.direction == .clientToServer ? 0 : 1) | (st.closed ? 2 : 0))
            opt(st.to, &o)
            opt(st.from, &o)
            opt(st.id, &o)
            opt(st.version, &o)
        }
        int(s.sasl.count, &o)
        for n in s.sasl {
            str(n.mechanism, &o)
            opt(n.initialResponse, &o)
            opt(n.authzid, &o)
            opt(n.initiating, &o)
            opt(n.receiving, &o)
            int(n.offered.count, &o)
            for m in n.offered { str(m, &o) }
            o.append((n.malformedResponse ? 1 : 0) | (n.overTLS ? 2 : 0))
            frame(n.authFrame, &o)
            str(n.outcome.rawValue, &o)
            opt(n.condition, &o)
            frame(n.outcomeFrame, &o)
            opt(n.streamIDBefore, &o)
            opt(n.streamIDAfter, &o)
        }
        let f = s.facts
        int((f.featuresBeforeTLS ? 1 : 0) | (f.featuresInTLS ? 2 : 0) | (f.startTLSOffered ? 4 : 0) | (f.startTLSRequired ? 8 : 0)
            | (f.dialbackOffered ? 16 : 0) | (f.dialbackErrorsOffered ? 32 : 0) | (f.bidiOffered ? 64 : 0) | (f.bidiRequested ? 128 : 0)
            | (f.sentDialbackError.clientToServer ? 256 : 0) | (f.sentDialbackError.serverToClient ? 512 : 0), &o)
        int(f.mechanisms.count, &o)
        for m in f.mechanisms { str(m, &o) }
        int(f.stanzas.clientToServer, &o)
        int(f.stanzas.serverToClient, &o)
        for d in Direction.allCases {
            int(f.stanzaDomains[d].count, &o)
            for m in f.stanzaDomains[d] { str(m, &o) }
        }
    }

    static func decode(_ b: [UInt8]) -> ConnectionSummary? {
        b.withWireBytes { w in
            var r = Reader(wire: WireReader(w))
            return decode(&r)
        }
    }

    private static func decode(_ r: inout Reader) -> ConnectionSummary? {
        guard let id = r.int(), let input = r.int(), let client = r.str(), let server = r.str(),
              let clientAddress = r.str(), let serverAddress = r.str(), let first = r.frame(), let last = r.frame(),
              let closeFrame = r.optFrame() else { return nil }
        guard let close = r.opt(), let flags = r.byte(), let streamID = r.opt(), let initialTo = r.opt(),
              let n = r.int(), n >= 0, n < 1 << 20 else { return nil }
        var streams: [StreamSummary] = []
        streams.reserveCapacity(n)
        for _ in 0..<n {
            guard let f = r.byte(), let to = r.opt(), let from = r.opt(), let sid = r.opt(), let version = r.opt() else { return nil }
            streams.append(StreamSummary(direction: f & 1 == 0 ? .clientToServer : .serverToClient, to: to, from: from,
                                         id: sid, version: version, closed: f & 2 != 0))
        }
        guard let ns = r.int(), ns >= 0, ns <= ConnectionModel.maxSASLNegotiations else { return nil }
        var sasl: [SASLNegotiation] = []
        for _ in 0..<ns {
            guard let mechanism = r.str(), let response = r.opt(), let authzid = r.opt(), let initiating = r.opt(),
                  let receiving = r.opt(), let no = r.int(), no >= 0, no < 1 << 16 else { return nil }
            var offered: [String] = []
            for _ in 0..<no {
                guard let m = r.str() else { return nil }
                offered.append(m)
            }
            guard let f = r.byte(), let authFrame = r.frame(), let outcome = r.str().flatMap(SASLNegotiation.Outcome.init(rawValue:)),
                  let condition = r.opt(), let outcomeFrame = r.optFrame() else { return nil }
            guard let before = r.opt(), let after = r.opt() else { return nil }
            var n = SASLNegotiation(mechanism: mechanism, initialResponse: response, authzid: authzid, malformedResponse: f & 1 != 0,
                                    initiating: initiating, receiving: receiving, offered: offered, overTLS: f & 2 != 0,
                                    authFrame: authFrame, streamIDBefore: before, streamIDAfter: after)
            n.outcome = outcome
            n.condition = condition
            n.outcomeFrame = outcomeFrame
            sasl.append(n)
        }
        guard let bits = r.int(), let nm = r.int(), nm >= 0, nm < 1 << 16 else { return nil }
        var facts = ConnectionFacts()
        facts.featuresBeforeTLS = bits & 1 != 0
        facts.featuresInTLS = bits & 2 != 0
        facts.startTLSOffered = bits & 4 != 0
        facts.startTLSRequired = bits & 8 != 0
        facts.dialbackOffered = bits & 16 != 0
        facts.dialbackErrorsOffered = bits & 32 != 0
        facts.bidiOffered = bits & 64 != 0
        facts.bidiRequested = bits & 128 != 0
        facts.sentDialbackError = PerDirection(bits & 256 != 0, bits & 512 != 0)
        for _ in 0..<nm {
            guard let m = r.str() else { return nil }
            facts.mechanisms.append(m)
        }
        guard let sc = r.int(), let ss = r.int() else { return nil }
        facts.stanzas = PerDirection(sc, ss)
        for d in Direction.allCases {
            guard let n = r.int(), n >= 0, n <= ConnectionFacts.maxStanzaDomains else { return nil }
            for _ in 0..<n {
                guard let m = r.str() else { return nil }
                facts.stanzaDomains[d].append(m)
            }
        }
        return ConnectionSummary(id: ConnectionID(id), input: input, client: client, server: server, clientAddress: clientAddress,
                                 serverAddress: serverAddress, firstFrame: first, lastFrame: last, closeFrame: closeFrame,
                                 close: close, tls: flags & 1 != 0, streams: streams, hidden: flags & 2 != 0,
                                 initiatorDamaged: flags & 4 != 0, streamID: streamID, initialTo: initialTo,
                                 pickedUp: PerDirection(flags & 8 != 0, flags & 16 != 0), sasl: sasl, facts: facts)
    }

    static func int(_ v: Int, _ o: inout [UInt8]) {
        withUnsafeBytes(of: Int64(v).littleEndian) { o.append(contentsOf: $0) }
    }

    static func str(_ s: String, _ o: inout [UInt8]) {
        // From the contiguous UTF-8 (one copy): appending `s.utf8` goes byte by byte.
        var s = s
        s.withUTF8 { u in
            int(u.count, &o)
            o.append(contentsOf: u)
        }
    }

    static func opt(_ s: String?, _ o: inout [UInt8]) {
        o.append(s == nil ? 0 : 1)
        if let s { str(s, &o) }
    }

    static func frame(_ f: FrameRef?, _ o: inout [UInt8]) {
        o.append(f == nil ? 0 : 1)
        if let f { frame(f, &o) }
    }

    static func frame(_ f: FrameRef, _ o: inout [UInt8]) {
        int(f.input, &o)
        int(f.number, &o)
        int(Int(f.time.seconds), &o)
        int(Int(f.time.nanoseconds), &o)
    }

    /// Reads a record back through the checked reader: a damaged file (a record cut by a full
    /// disk, a length gone wrong) gives nil, never a trap or a read outside the record.
    struct Reader {
        var wire: WireReader
        mutating func byte() -> UInt8? { wire.u8() }
        mutating func int() -> Int? {
            wire.le64().map { Int(truncatingIfNeeded: Int64(bitPattern: $0)) }
        }
        mutating func str() -> String? {
            guard let n = int(), let b = wire.bytes(n) else { return nil }
            return String(decoding: b.buffer, as: UTF8.self)
        }
        /// nil: malformed; .some(nil): absent.
        mutating func opt() -> String?? {
            guard let flag = byte() else { return nil }
            if flag == 0 { return .some(nil) }
            guard let s = str() else { return nil }
            return .some(s)
        }
        mutating func frame() -> FrameRef? {
            guard let input = int(), let number = int(), let s = int(), let ns = int() else { return nil }
            return FrameRef(input: input, number: number, time: Timestamp(seconds: Int64(s), nanoseconds: Int32(truncatingIfNeeded: ns)))
        }
        /// nil: malformed; .some(nil): absent.
        mutating func optFrame() -> FrameRef?? {
            guard let flag = byte() else { return nil }
            if flag == 0 { return .some(nil) }
            guard let f = frame() else { return nil }
            return .some(f)
        }
    }
}

/// The connections of a report in ID order: summaries read back from the archive one at a
/// time, so that writing a report of a huge capture does not hold them all at once.
public struct ConnectionList: RandomAccessCollection, Sendable {
    private let archive: ArchiveReference<ConnectionArchive>?
    private let ids: [ConnectionID]
    private let held: [ConnectionSummary]

    public init(_ summaries: [ConnectionSummary] = []) {
        archive = nil
        ids = []
        held = summaries.sorted { $0.id < $1.id }
    }

    public init(archive: ConnectionArchive) {
        self.archive = ArchiveReference(archive)
        ids = archive.ids
        held = []
    }

    /// The XMPP streams of all these connections.
    public var streamCount: Int {
        guard let archive else { return held.reduce(0) { $0 + $1.streams.count } }
        return archive.archive.streamCount
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { archive == nil ? held.count : ids.count }

    public subscript(i: Int) -> ConnectionSummary {
        guard let archive else { return held[i] }
        if let s = archive.archive.summary(of: ids[i]) { return s }
        // The temporary file failed under us: say so in the record rather than stop the report.
        let none = FrameRef(input: 0, number: 0, time: .zero)
        return ConnectionSummary(id: ids[i], input: 0, client: "?", server: "?", clientAddress: "?", serverAddress: "?",
                                 firstFrame: none, lastFrame: none, closeFrame: nil, close: "unreadable (temporary file error)",
                                 tls: false, streams: [], hidden: false, initiatorDamaged: false, streamID: nil, initialTo: nil)
    }
}

/// An archive in a report's list: it is read only once the analysis is over, from one thread
/// (a read is not free of writes: it moves pages through the indexes' caches, `SlotStore`).
final class ArchiveReference<Archive>: @unchecked Sendable {
    let archive: Archive
    init(_ a: Archive) { archive = a }
}
