import CExpat
#if canImport(Glibc)
import Glibc
#endif
import S2Model

/// Counts the expat parsers alive among the decoders that share it (one thread only): the
/// engine's memory estimate charges each one (docs/LIMITS.md).
public final class ParserCount {
    public var live: Int { _live }
    var _live: Int = 0
    public init() {}
    func add(_ n: Int) { _live += n }
}

/// Receives XMPP stream events and the anomalies of the XML layer.
public protocol XMPPEventSink: AnyObject {
    func xmppEvent(_ event: XMPPEvent)
    func xmppAnomaly(_ anomaly: Anomaly)
}

/// Takes the bytes of a direction after `<proceed/>` (the TLS records). Implemented outside
/// S2XMPP (S2TLS) and injected by the engine; decrypted application data comes back through
/// `XMPPStreamDecoder.feedDecrypted`.
public protocol TLSRecordSink: AnyObject {
    func tlsBytes(_ direction: Direction, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef)
    func tlsGap(_ direction: Direction, at offset: UInt64, length: UInt64, frame: FrameRef)
}

/// Turns one direction's reassembled bytes into XMPP stream events, incrementally, with a
/// namespace-aware expat push parser (the parser Prosody, ejabberd and jabberd use).
///
/// Feed chunks as they arrive; events carry exact stream offsets and the frames that carried
/// them. After a reassembly gap or a well-formedness error the decoder resynchronises at the
/// next plausible top-level element (reporting `xml-desync`), re-creating the header's
/// namespace context with a synthetic header so prefixes keep resolving.
public final class XMPPStreamDecoder {
    public enum Mode: Sendable { case xml, resync, tls, closed }

    /// After parsing resumes at a plausible top-level start tag (a pickup, a gap, an error), the
    /// first element may really be a child of an element whose start was lost — a `<message/>`
    /// forwarded inside another one, say. Only once a second top-level element starts right after
    /// it is the position trusted; until then a parse error is a resynchronisation artifact and
    /// the element is reported as tentative.
    enum Sync { case synced, firstElement, firstElementDone }

    enum Stop { case tls, restart, closed, resync }

    public let direction: Direction
    public let limits: XMLLimits
    public unowned let sink: XMPPEventSink
    public var connection: ConnectionID? { get { _connection } set { _connection = newValue } }
    var _connection: ConnectionID?
    public var mode: Mode { _mode }
    var _mode: Mode = .xml
    /// The latest stream header of this direction.
    public var header: StreamHeader? { _header }
    var _header: StreamHeader? { didSet { syntheticCache = nil } }
    /// Bytes seen after the switch to TLS.
    public private(set) var encryptedBytes: UInt64 = 0
    /// Bytes skipped while resynchronising.
    public private(set) var skippedBytes: UInt64 = 0
    /// Receives the TLS records after `<proceed/>` (nil: they are only counted).
    public weak var tlsSink: TLSRecordSink?
    /// Whether the first bytes of the direction were classified (direct TLS, another protocol).
    private var streamStartChecked = false
    /// The direction carries another protocol: its bytes are ignored.
    private var foreign = false
    /// Decrypted bytes parsed as the restarted stream inside TLS.
    public private(set) var decryptedBytes: UInt64 = 0

    private var parser: XML_Parser? {
        didSet { if (oldValue == nil) != (parser == nil) { parserCount?.add(parser == nil ? -1 : 1) } }
    }
    /// Where this decoder's live parser is counted (nil: nowhere).
    public var parserCount: ParserCount? { get { _parserCount } set { _parserCount = newValue } }
    var _parserCount: ParserCount?
    /// Whether a stream that waits after its header (nothing else pending) frees its parser
    /// (parks) until its next byte, which makes a new one primed with a synthetic header. A
    /// connection that only opened its stream then costs no expat state (about 10 KB:
    /// docs/LIMITS.md), but one that goes on pays a parser and a primed header (about 55,000
    /// instructions; nearly every stream waits after its header). The engine asks for it only
    /// when many connections are open (`EngineConfiguration.parkIdleParsersAbove`).
    public var parksWhenIdle: Bool { get { _parksWhenIdle } set { _parksWhenIdle = newValue } }
    var _parksWhenIdle: Bool = true
    /// The parser was freed right after a stream header.
    private var parked = false
    /// Top-level elements the current parser delivered.
    private var elementsInParser = 0
    /// Stream offset of expat byte index 0 of the current parser.
    private var parserBase: Int64 = 0
    private var suppressHeader = false
    private var depth = 0
    private var hadXMLDeclaration = false
    private var declaredEncoding: String?
    /// The tree of the current top-level element, within the limits.
    private let pinnedBuilder: PinnedValue<ElementBuilder>
    /// Pinned (`PinnedValue`): every element start and end mutates it, and its arrays grow there.
    private var builder: ElementBuilder {
        unsafeAddress { UnsafePointer(pinnedBuilder.pointer) }
        unsafeMutableAddress { pinnedBuilder.pointer }
    }
    private var headerStart: UInt64 = 0
    private var lastStartTagEnd: UInt64 = 0
    private var lastEventEnd: UInt64 = 0
    /// Just past the last token expat consumed, asked after each `XML_Parse` (outside callbacks
    /// expat reports that position whether or not a handler saw the token). Text is no pending
    /// token, so a long body counts as progress for the `maxTokenBytes` check without expat
    /// calling back for every piece of it.
    private var parsedEnd: UInt64 = 0
    private var fedEnd: UInt64 = 0
    private let pinnedIndex = PinnedValue(OffsetIndex())
    /// Pinned (`PinnedValue`): every packet appends to it.
    private var index: OffsetIndex {
        unsafeAddress { UnsafePointer(pinnedIndex.pointer) }
        unsafeMutableAddress { pinnedIndex.pointer }
    }
    private var pendingStop: (Stop, UInt64)?
    private var resyncFrom: UInt64 = 0
    private var resyncCarry: [UInt8] = []
    private var tlsReported = false
    private var currentChunk: UnsafeRawBufferPointer?
    private var currentChunkOffset: UInt64 = 0
    private var lastFrame: FrameRef?
    /// The transport carries TLS records (set at `<proceed/>`, not by anything inside TLS).
    private var transportTLS = false
    /// The direction's first bytes are not its stream's first bytes (see `startsMidstream`).
    private var pickupPending = false
    /// No header of this direction was seen: elements are parsed in an assumed s2s context
    /// (`jabber:server`, `stream`, `db`) plus the prefixes learned from what followed.
    private var assumedContext = false
    private var learnedDeclarations: [NamespaceDeclaration] = [] { didSet { syntheticCache = nil } }
    /// Set while resynchronising at the start of a mid-stream pickup: the cut element is
    /// expected, not a loss worth an `xml-desync` anomaly.
    private var pickupSkip = false
    /// How far parsing trusts its position after it resumed without context.
    private var sync = Sync.synced
    /// Decrypted plaintext has started: `mode`, offsets and the index describe the plaintext.
    private var insideTLS = false

    public init(direction: Direction, limits: XMLLimits = .init(), sink: XMPPEventSink) {
        self.direction = direction
        self.limits = limits
        self.sink = sink
        pinnedBuilder = PinnedValue(ElementBuilder(limits: limits))
    }

    deinit { destroyParser() }

    // MARK: - Input

    /// The capture did not see this direction start: its first bytes may be anywhere in a stream
    /// (inside an element, inside TLS). Call before the first `feed`.
    public func startsMidstream() { pickupPending = true }

    /// Feeds the next chunk of the direction's byte stream, starting at stream offset `offset`.
    public func feed(_ bytes: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef) {
        guard !bytes.isEmpty else { return }
        if !streamStartChecked && !insideTLS {
            streamStartChecked = true
            if pickupPending {
                pickupPending = false
                beginMidstream(bytes, at: offset, frame: frame)
            } else if offset == 0 && classifyStreamStart(bytes, frame: frame) { return }
        }
        if foreign { return }
        if transportTLS, tlsSink != nil {
            if !insideTLS { index.append(offset: offset, frame: frame) }
            lastFrame = frame
            _ = consumeTLS(bytes, at: offset, transport: true)
            return
        }
        feedBytes(bytes, at: offset, frame: frame)
    }

    /// Looks at the first bytes of a direction that starts at offset 0. A TLS record there means TLS
    /// without STARTTLS (XEP-0368 direct TLS on the s2s port): it is handled as TLS, not as broken
    /// XML. Another protocol's greeting (HTTP, SSH) is reported once as `not-xmpp` and ignored.
    /// Anything else goes to the XML parser (a midstream pickup may start inside an element).
    /// Returns true when the bytes were consumed here.
    private func classifyStreamStart(_ b: UnsafeRawBufferPointer, frame: FrameRef) -> Bool {
        if let first = WireBytes(b).u8(0), (0x14...0x17).contains(first) {  // TLS content types; control characters, never XML
            _mode = .tls
            transportTLS = true
            return false
        }
        let head = String(decoding: b.prefix(8), as: UTF8.self)
        for greeting in ["GET ", "POST ", "HEAD ", "PUT ", "OPTIONS ", "CONNECT ", "HTTP/1.", "SSH-", "PRI * "] where head.hasPrefix(greeting) {
            foreign = true
            sink.xmppAnomaly(Anomaly(kind: .notXMPP, connection: connection, direction: direction, frame: frame,
                                     message: "the \(direction.reportName) direction starts with '\(greeting.trimmingTrailingSpace)', not XML: another protocol on the s2s port, not analysed"))
            return true
        }
        return false
    }

    /// The first bytes of a direction picked up mid-stream. A stream header there is a real start
    /// (the capture began between the handshake and the header); TLS records mean an encrypted
    /// connection; anything else is XML whose context was missed: skip to the next top-level
    /// start tag and parse in the assumed context.
    private func beginMidstream(_ b: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef) {
        let w = WireBytes(b)
        let i = w.firstOffset(where: { !isXMLSpace($0) }) ?? w.count
        if w.u8(i) == UInt8(ascii: "<"), startsStreamHeader(w.dropFirst(i).buffer) { return }
        index.append(offset: offset, frame: frame)
        lastFrame = frame
        emit(.pickedUp, start: offset, end: offset)
        if !looksLikeText(b), TLSRecordScan.looksLikeRecords(b) {
            _mode = .tls
            transportTLS = true
            return
        }
        assumedContext = true
        pickupSkip = true
        destroyParser()
        _mode = .resync
        resyncFrom = offset
        resyncCarry = []
    }

    /// `<?xml`, `<stream:stream` or `<P:stream` followed by a space or `>`.
    private func startsStreamHeader(_ raw: UnsafeRawBufferPointer) -> Bool {
        let b = WireBytes(raw)
        if b.matches("<?xml".utf8, at: 0) { return true }
        guard let second = b.u8(1), second != UInt8(ascii: "/") else { return false }  // a closing tag is no start
        var i = 1
        while i < 64, let x = b.u8(i), x != UInt8(ascii: ":"), !isXMLSpace(x), x != UInt8(ascii: ">") { i += 1 }
        let nameStart = b.u8(i) == UInt8(ascii: ":") ? i + 1 : 1
        let word = "stream".utf8
        guard b.matches(word, at: nameStart), let after = b.u8(nameStart + word.count) else { return false }
        return isXMLSpace(after) || after == UInt8(ascii: ">")
    }

    /// Whether the bytes up to the first `<` (or all of them) are text, as inside XML, rather
    /// than binary (TLS records, other protocols).
    private func looksLikeText(_ b: UnsafeRawBufferPointer) -> Bool {
        for x in b.prefix(4096) {
            if x == UInt8(ascii: "<") { return true }
            if x < 0x20 && !isXMLSpace(x) { return false }
        }
        return true
    }

    /// Decrypted application data of this direction (from the TLS layer), carried by the record
    /// that `frame` completed. The first call starts a new stream (a header is expected); the
    /// plaintext has its own offsets, starting at 0.
    public func feedDecrypted(_ bytes: UnsafeRawBufferPointer, frame: FrameRef) {
        guard !bytes.isEmpty else { return }
        if !insideTLS {
            insideTLS = true
            destroyParser()
            _mode = .xml
            depth = 0
            index = OffsetIndex()
            fedEnd = 0
            lastEventEnd = 0
            parsedEnd = 0
            lastStartTagEnd = 0
            builder.resetOffsets()
            resyncFrom = 0
            resyncCarry = []
        }
        let at = decryptedBytes
        decryptedBytes += UInt64(bytes.count)
        feedBytes(bytes, at: at, frame: frame)
    }

    private func feedBytes(_ bytes: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef) {
        index.append(offset: offset, frame: frame)
        lastFrame = frame
        fedEnd = offset + UInt64(bytes.count)
        var data = bytes
        var off = offset
        while !data.isEmpty {
            let consumed: Int
            switch mode {
            case .xml: consumed = parse(data, at: off)
            case .tls: consumed = consumeTLS(data, at: off, transport: !insideTLS)
            case .closed: consumed = consumeAfterClose(data, at: off)
            case .resync: consumed = resync(data, at: off)
            }
            // Every mode consumes at most what it was given; a miss would be a bug, not an input.
            guard let rest = WireBytes(data).suffix(from: consumed) else { break }
            data = rest.buffer
            off += UInt64(consumed)
        }
        index.trim(before: depth >= 2 ? min(builder.elementStart, lastEventEnd) : lastEventEnd)
        if mode == .xml, let p = parser, depth == 1, elementsInParser == 0, max(lastEventEnd, parsedEnd) >= fedEnd, pendingStop == nil,
           !suppressHeader, header != nil, parksWhenIdle {
            XML_ParserFree(p)
            parser = nil
            parked = true
        }
    }

    /// Bytes `[offset, offset+length)` will never arrive: the parser state is lost.
    public func gap(at offset: UInt64, length: UInt64, frame: FrameRef) {
        index.append(offset: offset, frame: frame)
        lastFrame = frame
        emit(.bytesLost(length: length), start: offset, end: offset + length)
        if transportTLS, let sink = tlsSink {
            encryptedBytes += length
            sink.tlsGap(direction, at: offset, length: length, frame: frame)
            return
        }
        switch mode {
        case .xml:
            destroyParser()
            _mode = .resync
            resyncFrom = offset
            resyncCarry = []
        case .resync:
            resyncCarry = []
        case .tls:
            encryptedBytes += length
        case .closed:
            break
        }
        fedEnd = offset + length
        lastEventEnd = fedEnd
    }

    /// Ends the direction (the connection closed or the capture ended).
    public func finish() {
        if mode == .resync, fedEnd > resyncFrom {
            reportDesync(skipped: fedEnd - resyncFrom, found: false)
        }
        destroyParser()
    }

    /// The peer's `<proceed/>` switched this direction to TLS at its current position.
    public func switchToTLS() {
        destroyParser()
        _mode = .tls
        if !insideTLS { transportTLS = true }
    }

    /// The stream restarts (SASL success) at this direction's current position.
    public func restart() {
        destroyParser()
        _mode = .xml
        depth = 0
    }

    /// Called from an event handler of this decoder: stop after the current event.
    func requestStop(_ stop: Stop) {
        guard let p = parser else { return }
        pendingStop = (stop, lastEventEnd)
        XML_StopParser(p, XML_FALSE)
    }

    /// Asks this decoder (from within its own event delivery) to switch to TLS after the
    /// element just reported.
    public func stopForTLSAfterCurrentElement() { requestStop(.tls) }
    /// Asks this decoder (from within its own event delivery) to restart after the element just reported.
    public func restartAfterCurrentElement() { requestStop(.restart) }

    // MARK: - Parsing

    private func makeParser(base: Int64) {
        destroyParser()
        let p = XML_ParserCreateNS("UTF-8", 0x01)!
        XML_SetReturnNSTriplet(p, 1)
        XML_SetUserData(p, Unmanaged.passUnretained(self).toOpaque())
        XML_SetElementHandler(p, onStart, onEnd)
        XML_SetNamespaceDeclHandler(p, onNamespaceStart, nil)
        XML_SetCommentHandler(p, onComment)
        XML_SetProcessingInstructionHandler(p, onProcessingInstruction)
        XML_SetXmlDeclHandler(p, onXMLDeclaration)
        XML_SetStartDoctypeDeclHandler(p, onDoctype)
        // Debian's expat 2.5.0-1+deb12u5 backports reparse deferral (CVE-2023-52425): a token split
        // over small chunks would only be parsed once the buffer doubles, so events would lag behind
        // the packets (or never come at the end of a stream). Parse eagerly; `maxTokenBytes` bounds
        // the quadratic re-scan that deferral protects against.
        _ = s2_disable_reparse_deferral(p)
        _ = XML_SetBillionLaughsAttackProtectionMaximumAmplification(p, 100)
        _ = XML_SetBillionLaughsAttackProtectionActivationThreshold(p, 1 << 20)
        parser = p
        trimmedHandlers = false
        keepingText = false
        parserBase = base
        elementsInParser = 0
        depth = 0
        builder.reset()
        hadXMLDeclaration = false
        declaredEncoding = nil
        pendingStop = nil
    }

    private func destroyParser() {
        if let p = parser {
            XML_ParserFree(p)
            parser = nil
        }
        parked = false
        builder.dropTree()
    }

    /// Absolute stream offset of expat's current event.
    @inline(__always)
    private func currentOffset() -> UInt64 {
        let i = parserBase + Int64(XML_GetCurrentByteIndex(parser!))
        return UInt64(max(0, i))
    }

    @inline(__always)
    private func currentEnd() -> UInt64 {
        currentOffset() + UInt64(max(0, XML_GetCurrentByteCount(parser!)))
    }

    private func parse(_ chunk: UnsafeRawBufferPointer, at offset: UInt64) -> Int {
        // expat takes an Int32 length: a larger chunk is parsed in pieces (the callers loop).
        let data = WireBytes(chunk).prefix(Int(Int32.max)).buffer
        guard let base = data.baseAddress else { return 0 }
        if parser == nil {
            if parked {
                primeParser(at: offset)
                // A parked stream parses on as if the parser had never been freed.
                elementsInParser = 1
            } else {
                makeParser(base: Int64(offset))
            }
        }
        currentChunk = data
        currentChunkOffset = offset
        defer { currentChunk = nil }
        let status = XML_Parse(parser!, base.assumingMemoryBound(to: CChar.self), Int32(data.count), 0)
        if status != XML_STATUS_ERROR, let p = parser {
            // Outside its callbacks expat reports the position just past the last token it consumed.
            let i = XML_GetCurrentByteIndex(p)
            if i >= 0 { parsedEnd = max(parsedEnd, UInt64(max(0, parserBase + Int64(i)))) }
        }
        if status == XML_STATUS_ERROR {
            let code = XML_GetErrorCode(parser!)
            if code == XML_ERROR_ABORTED, let (stop, at) = pendingStop {
                pendingStop = nil
                destroyParser()
                switch stop {
                case .tls: _mode = .tls; if !insideTLS { transportTLS = true }
                case .restart: _mode = .xml; depth = 0
                case .closed: _mode = .closed
                case .resync: _mode = .resync; resyncFrom = at; resyncCarry = []
                }
                return consumedUpTo(at, chunkStart: offset, count: data.count)
            }
            let errorAt = currentOffset()
            if assumedContext && header == nil && code == XML_ERROR_UNBOUND_PREFIX, learnPrefix(at: errorAt) {
                // The prefix was declared on the header the capture missed: parse the element again with it.
                destroyParser()
                resume(at: errorAt, candidate: [], quietly: true)
                return consumedUpTo(errorAt, chunkStart: offset, count: data.count)
            }
            if let b0 = byte(at: errorAt), b0 == 0x16, byte(at: errorAt + 1) ?? 0x03 == 0x03 {
                // A TLS handshake record where XML was expected: the peer's <proceed/> was lost or not
                // captured. The direction is TLS from here; its bytes are not ill-formed XML.
                sink.xmppAnomaly(Anomaly(kind: .encrypted, connection: connection, direction: direction, frame: index.frame(at: errorAt) ?? lastFrame,
                                         message: "TLS records begin in the \(direction.reportName) direction without a <proceed/> seen (lost or not captured); what follows is encrypted"))
                destroyParser()
                _mode = .tls
                if !insideTLS { transportTLS = true }
                return consumedUpTo(errorAt, chunkStart: offset, count: data.count)
            }
            if sync == .synced && !(assumedContext && code == XML_ERROR_UNBOUND_PREFIX) {
                reportError(code: code, at: errorAt)
            }
            destroyParser()
            _mode = .resync
            resyncFrom = errorAt
            resyncCarry = []
            // Rescan from just after the error position.
            return consumedUpTo(errorAt + 1, chunkStart: offset, count: data.count)
        }
        if fedEnd > max(lastEventEnd, parsedEnd) + UInt64(limits.maxTokenBytes) {
            sink.xmppAnomaly(Anomaly(kind: .limitReached, connection: connection, direction: direction, frame: lastFrame,
                                     bytes: fedEnd - lastEventEnd,
                                     message: "a single XML token (tag, comment or attribute) exceeds \(limits.maxTokenBytes) bytes; parsing resumes at the next top-level element"))
            destroyParser()
            _mode = .resync
            resyncFrom = lastEventEnd
            resyncCarry = []
        }
        return data.count
    }

    private func consumedUpTo(_ absolute: UInt64, chunkStart: UInt64, count: Int) -> Int {
        if absolute <= chunkStart { return 0 }
        return Int(min(UInt64(count), absolute - chunkStart))
    }

    private func reportError(code: XML_Error, at offset: UInt64) {
        let frameEvent = { (kind: XMPPEventKind) in
            self.emit(kind, start: offset, end: offset + 1)
        }
        if code == XML_ERROR_UNDEFINED_ENTITY {
            frameEvent(.restricted(.entityReference(name: entityName(at: offset) ?? "?")))
            return
        }
        if let b = byte(at: offset), b >= 0x80, !validUTF8(at: offset) {
            frameEvent(.restricted(.invalidUTF8))
            return
        }
        let reason = String(cString: XML_ErrorString(code))
        frameEvent(.notWellFormed(code: Int(code.rawValue), reason: reason, offset: offset))
    }

    private func byte(at absolute: UInt64) -> UInt8? {
        guard let c = currentChunk, absolute >= currentChunkOffset, absolute - currentChunkOffset < UInt64(c.count) else { return nil }
        return WireBytes(c).u8(Int(absolute - currentChunkOffset))
    }

    private func validUTF8(at absolute: UInt64) -> Bool {
        guard let c = currentChunk, absolute >= currentChunkOffset, absolute - currentChunkOffset < UInt64(c.count) else { return true }
        let i = Int(absolute - currentChunkOffset)
        let end = min(c.count, i + 4)
        guard let bytes = WireBytes(c).slice(from: i, to: end), !bytes.isEmpty else { return true }
        var decoder = UTF8()
        var it = bytes.makeIterator()
        switch decoder.decode(&it) {
        case .scalarValue, .emptyInput: return true
        // A sequence cut by the chunk end cannot be judged; only report clear breakage.
        case .error: return end - i < 4 && end == c.count
        }
    }

    private func entityName(at absolute: UInt64) -> String? {
        guard let c = currentChunk, absolute >= currentChunkOffset, absolute - currentChunkOffset < UInt64(c.count) else { return nil }
        let w = WireBytes(c)
        var i = Int(absolute - currentChunkOffset)
        guard w.u8(i) == UInt8(ascii: "&") else { return nil }
        i += 1
        var name: [UInt8] = []
        while let b = w.u8(i), b != UInt8(ascii: ";"), name.count < 64 { name.append(b); i += 1 }
        return String(decoding: name, as: UTF8.self)
    }

    // MARK: - Non-XML modes

    /// `transport`: the bytes come from TCP (TLS records); otherwise they are decrypted bytes
    /// after a `<proceed/>` inside TLS, which are only skipped.
    private func consumeTLS(_ data: UnsafeRawBufferPointer, at offset: UInt64, transport: Bool) -> Int {
        if !tlsReported {
            tlsReported = true
            let w = WireBytes(data)
            // A record header starts 0x16 0x03 (handshake, TLS major version 3); one byte is judged alone.
            let looks = w.u8(0) == 0x16 && (w.count < 2 || w.u8(1) == 0x03)
            emit(.tlsStarted(looksLikeTLS: looks), start: offset, end: offset + UInt64(min(data.count, 5)))
        }
        if !transport { return data.count }
        encryptedBytes += UInt64(data.count)
        if let sink = tlsSink, let f = lastFrame { sink.tlsBytes(direction, data, at: offset, frame: f) }
        return data.count
    }

    private func consumeAfterClose(_ data: UnsafeRawBufferPointer, at offset: UInt64) -> Int {
        let i = WireBytes(data).firstOffset(where: { !isXMLSpace($0) }) ?? data.count
        if i == data.count { return i }
        emit(.dataAfterClose, start: offset + UInt64(i), end: offset + UInt64(data.count))
        // Keep analysing whatever follows as a new stream.
        _mode = .xml
        _header = nil
        return i
    }

    // MARK: - Resynchronisation

    private func candidates() -> [[UInt8]] {
        let sp = header?.prefix ?? "stream"
        var names = ["message", "presence", "iq", "\(sp):features", "\(sp):error", "\(sp):stream",
                     "/\(sp):stream", "?xml", "starttls", "proceed", "success", "failure", "auth", "challenge", "response"]
        for p in header?.prefixes(for: Namespace.dialback) ?? ["db"] {
            names.append("\(p):result")
            names.append("\(p):verify")
        }
        return names.map { Array(("<" + $0).utf8) }
    }

    private func resync(_ data: UnsafeRawBufferPointer, at offset: UInt64) -> Int {
        let cands = candidates()
        let maxLen = (cands.map(\.count).max() ?? 0) + 1
        // Work on carry + data so that a candidate split across chunks is still found.
        let carryCount = resyncCarry.count
        var buf = resyncCarry
        buf.append(contentsOf: data)
        let bufStart = offset - UInt64(carryCount)
        return buf.withWireBytes { w -> Int in
            var i = 0
            while let b = w.u8(i) {
                if b == UInt8(ascii: "<") {
                    var undecided = false
                    for c in cands {
                        if i + c.count + 1 > w.count {
                            // The bytes left are the start of a candidate: wait for more.
                            if w.count - i < maxLen && c.starts(with: w.dropFirst(i)) { undecided = true }
                            continue
                        }
                        if w.matches(c, at: i), let after = w.u8(i + c.count),
                           isXMLSpace(after) || after == UInt8(ascii: ">") || after == UInt8(ascii: "/") {
                            let at = bufStart + UInt64(i)
                            resume(at: at, candidate: c)
                            resyncCarry = []
                            // Hand back the bytes from the candidate on (the carry part is re-fed here).
                            if i < carryCount {
                                if let tail = w.slice(from: i, to: carryCount), let f = index.frame(at: at) {
                                    feedInternal(tail.buffer, at: at, frame: f)
                                }
                                return 0
                            }
                            return i - carryCount
                        }
                    }
                    if undecided {
                        resyncCarry = Array(w.dropFirst(i).buffer)
                        return data.count
                    }
                }
                i += 1
            }
            resyncCarry = []
            return data.count
        }
    }

    /// Re-feeds bytes that were held back while resynchronising.
    private func feedInternal(_ bytes: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef) {
        var data = bytes
        var off = offset
        while !data.isEmpty && mode == .xml {
            let n = parse(data, at: off)
            guard let rest = WireBytes(data).suffix(from: n) else { break }
            data = rest.buffer
            off += UInt64(n)
        }
    }

    /// Resumes parsing at `offset` (a plausible top-level start tag, `candidate`).
    /// `quietly`: the skip is expected (the cut element of a pickup, a re-parse), not an `xml-desync`.
    private func resume(at offset: UInt64, candidate: [UInt8], quietly: Bool = false) {
        let text = String(decoding: candidate, as: UTF8.self)
        let sp = header?.prefix ?? "stream"
        if quietly {
            // A re-parse of the same element: the position is as trusted as before.
        } else if pickupSkip {
            skippedBytes += offset > resyncFrom ? offset - resyncFrom : 0
            pickupSkip = false
        } else {
            reportDesync(skipped: offset - resyncFrom, found: true)
        }
        if text == "<?xml" || text == "<\(sp):stream" {
            _mode = .xml
            sync = .synced
            makeParser(base: Int64(offset))
            return
        }
        if !quietly { sync = .firstElement }
        _mode = .xml
        primeParser(at: offset)
    }

    /// A new parser that continues the stream at `offset`: the namespace context of the stream
    /// header is re-created with a synthetic header that is not reported again.
    private func primeParser(at offset: UInt64) {
        let synthetic = syntheticHeader()
        makeParser(base: Int64(offset) - Int64(synthetic.count))
        suppressHeader = true
        synthetic.withUnsafeBytes { b in
            // S2Scope's own few hundred bytes: never empty, far below Int32.max.
            guard let base = b.baseAddress else { return }
            _ = XML_Parse(parser!, base.assumingMemoryBound(to: CChar.self), Int32(b.count), 0)
        }
    }

    /// The synthetic header of `primeParser`, rebuilt only when the header or the learned prefixes
    /// change (both clear it): a parser is primed every time a parked stream resumes.
    private var syntheticCache: [UInt8]?

    private func syntheticHeader() -> [UInt8] {
        if let c = syntheticCache { return c }
        let bytes = buildSyntheticHeader()
        syntheticCache = bytes
        return bytes
    }

    private func buildSyntheticHeader() -> [UInt8] {
        let h = header
        let sp = h?.prefix ?? "stream"
        var decls = h?.declarations ?? [NamespaceDeclaration(prefix: nil, uri: Namespace.server),
                                         NamespaceDeclaration(prefix: "db", uri: Namespace.dialback)]
        if !decls.contains(where: { $0.prefix == sp }) { decls.append(NamespaceDeclaration(prefix: sp, uri: Namespace.streams)) }
        for d in learnedDeclarations where !decls.contains(where: { $0.prefix == d.prefix }) { decls.append(d) }
        var s = "<\(sp):stream"
        for d in decls { s += d.prefix.map { " xmlns:\($0)='\(escapeXML(d.uri))'" } ?? " xmlns='\(escapeXML(d.uri))'" }
        s += ">"
        return Array(s.utf8)
    }

    private func reportDesync(skipped: UInt64, found: Bool) {
        skippedBytes += skipped
        guard skipped > 0 || !found else { return }
        sink.xmppAnomaly(Anomaly(kind: .xmlDesync, connection: connection, direction: direction,
                                 frame: index.frame(at: resyncFrom) ?? lastFrame, bytes: skipped,
                                 message: found
                                    ? "XML parsing lost the stream; \(skipped) bytes skipped before resynchronising at the next top-level element"
                                    : "XML parsing lost the stream; the last \(skipped) bytes could not be parsed"))
    }

    // MARK: - Events

    private func emit(_ kind: XMPPEventKind, start: UInt64, end: UInt64, tentative: Bool = false) {
        let first = index.frame(at: start) ?? lastFrame!
        let last = index.frame(at: end > start ? end - 1 : start) ?? first
        sink.xmppEvent(XMPPEvent(kind: kind, direction: direction, startOffset: start, endOffset: end,
                                 firstFrame: first, lastFrame: last, tentative: tentative))
    }

    /// Learns the prefix of the start tag at `offset` that expat found unbound, binding it to what
    /// its element says it is (a stream-level or dialback element) or to a placeholder namespace.
    /// False when there is nothing to learn (the prefix is on an attribute, or too many learned).
    private func learnPrefix(at offset: UInt64) -> Bool {
        guard learnedDeclarations.count < 16, let c = currentChunk, offset >= currentChunkOffset else { return false }
        let w = WireBytes(c)
        var i = Int(offset - currentChunkOffset)
        guard w.u8(i) == UInt8(ascii: "<") else { return false }
        i += 1
        var name: [UInt8] = []
        while name.count < 128, let x = w.u8(i), !isXMLSpace(x), x != UInt8(ascii: ">"), x != UInt8(ascii: "/") {
            name.append(x)
            i += 1
        }
        guard let colon = name.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { return false }
        let prefix = String(decoding: name.prefix(colon), as: UTF8.self)
        let local = String(decoding: name.dropFirst(colon + 1), as: UTF8.self)
        guard !learnedDeclarations.contains(where: { $0.prefix == prefix }), prefix != "xml", prefix != "xmlns" else { return false }
        let uri: String
        switch local {
        case "stream", "features", "error": uri = Namespace.streams
        case "result", "verify": uri = Namespace.dialback
        default: uri = "urn:s2scope:undeclared-prefix:" + prefix
        }
        learnedDeclarations.append(NamespaceDeclaration(prefix: prefix, uri: uri))
        return true
    }

    fileprivate func startElement(_ name: UnsafePointer<CChar>, _ atts: UnsafeMutablePointer<UnsafePointer<CChar>?>?) {
        let start = currentOffset()
        let end = currentEnd()
        lastEventEnd = end
        lastStartTagEnd = end
        if depth == 0 {
            let (ns, local, prefix) = splitName(name)
            let decls = builder.takeDeclarations()
            var attributes: [XMLAttribute] = []
            ElementBuilder.readAttributes(atts, into: &attributes)
            var h = StreamHeader(local: local, namespace: ns, prefix: prefix, attributes: attributes, declarations: decls)
            h.hadXMLDeclaration = hadXMLDeclaration
            h.declaredEncoding = declaredEncoding
            depth = 1
            headerStart = start
            if suppressHeader {
                suppressHeader = false
            } else {
                _header = h
                assumedContext = false
                learnedDeclarations = []
                sync = .synced
                emit(.streamOpened(h), start: start, end: end)
            }
            return
        }
        if depth + 1 > limits.maxNestingDepth {
            depth += 1
            sink.xmppAnomaly(Anomaly(kind: .limitReached, connection: connection, direction: direction, frame: index.frame(at: start),
                                     message: "XML nesting deeper than \(limits.maxNestingDepth) levels; parsing resumes at the next top-level element"))
            pendingStop = (.resync, end)
            XML_StopParser(parser!, XML_FALSE)
            return
        }
        depth += 1
        if depth == 2 && sync == .firstElementDone { sync = .synced }
        switch builder.start(depth: depth, at: start, end: end, name: name, attributes: atts) {
        case .keptStanza:
            // Nothing inside a stanza needs its namespace declarations: expat need not call back
            // for them (its own checks, unbound prefixes included, still run).
            XML_SetNamespaceDeclHandler(parser!, nil, nil)
            trimmedHandlers = true
        case .kept where depth == 2:
            // Text is kept only inside top-level elements other than stanzas (dialback keys,
            // stream errors): only there does expat call back for it.
            XML_SetCharacterDataHandler(parser!, onText)
            keepingText = true
        default:
            break
        }
    }

    /// Declarations matter again once a stanza ended (those of the next element). A stanza always
    /// enters the tree (`ElementBuilder` keeps every top-level element), so its end is where they
    /// come back.
    private var trimmedHandlers = false
    /// Whether expat reports text: inside a kept top-level element that is not a stanza.
    private var keepingText = false

    private func restoreHandlers() {
        XML_SetNamespaceDeclHandler(parser!, onNamespaceStart, nil)
        trimmedHandlers = false
    }

    fileprivate func endElement() {
        var end = currentEnd()
        if XML_GetCurrentByteCount(parser!) == 0 { end = lastStartTagEnd }  // empty-element tag
        lastEventEnd = max(lastEventEnd, end)
        if depth == 1 {
            depth = 0
            emit(.streamClosed, start: currentOffset(), end: end)
            pendingStop = (.closed, end)
            XML_StopParser(parser!, XML_FALSE)
            return
        }
        if depth == 2 && keepingText {
            XML_SetCharacterDataHandler(parser!, nil)
            keepingText = false
        }
        if let el = builder.end(depth: depth) {
            depth -= 1
            if trimmedHandlers { restoreHandlers() }
            let elementStart = builder.elementStart
            if end - elementStart > UInt64(limits.maxElementBytes) {
                el.truncated = true
                sink.xmppAnomaly(Anomaly(kind: .limitReached, connection: connection, direction: direction,
                                         frame: index.frame(at: elementStart), bytes: end - elementStart,
                                         message: "top-level <\(el.qualifiedName)> spans \(end - elementStart) bytes, over the \(limits.maxElementBytes)-byte element cap; its content was not kept"))
            }
            elementsInParser += 1
            let tentative = sync == .firstElement
            if tentative { sync = .firstElementDone }
            emit(.element(el), start: elementStart, end: end, tentative: tentative)
            return
        }
        depth -= 1
    }

    fileprivate func characters(_ s: UnsafePointer<CChar>, _ len: Int32) {
        builder.text(depth: depth, s, len)
    }

    fileprivate func namespaceStart(_ prefix: UnsafePointer<CChar>?, _ uri: UnsafePointer<CChar>?) {
        // Declarations are kept only for elements the tree keeps (and the stream header).
        guard depth == 0 || builder.keepsNextStart(below: depth, end: lastEventEnd) else { return }
        builder.declare(prefix: prefix.map { String(cString: $0) }, uri: uri.map { String(cString: $0) } ?? "")
    }

    fileprivate func restricted(_ r: RestrictedXML) {
        let start = currentOffset(), end = currentEnd()
        lastEventEnd = max(lastEventEnd, end)
        emit(.restricted(r), start: start, end: end)
    }

    fileprivate func xmlDeclaration(_ encoding: UnsafePointer<CChar>?) {
        hadXMLDeclaration = true
        lastEventEnd = max(lastEventEnd, currentEnd())
        if let e = encoding {
            let enc = String(cString: e)
            declaredEncoding = enc
            if enc.lowercased() != "utf-8" && enc.lowercased() != "utf8" {
                restricted(.nonUTF8Encoding(declared: enc))
            }
        }
    }

    fileprivate func doctype(_ name: UnsafePointer<CChar>?) {
        restricted(.doctype(name: name.map { String(cString: $0) } ?? ""))
        // A DTD never reaches the entity expander: stop here and resynchronise after it.
        pendingStop = (.resync, currentOffset() + 1)
        XML_StopParser(parser!, XML_FALSE)
    }
}

extension String {
    var trimmingTrailingSpace: String { hasSuffix(" ") ? String(dropLast()) : self }
}

@inline(__always) func isXMLSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0a || b == 0x0d || b == 0x09 }

/// Splits expat's triplet `uri\u{1}local\u{1}prefix` (or `uri\u{1}local`, or `local`).
func splitName(_ name: UnsafePointer<CChar>) -> (String, String, String?) {
    let count = strlen(name)
    if let known = commonName(UnsafeRawPointer(name), count) { return known }
    let bytes = WireBytes(UnsafeRawBufferPointer(start: name, count: count))
    guard let first = bytes.firstOffset(of: 1) else {
        return ("", String(decoding: bytes.buffer, as: UTF8.self), nil)
    }
    let uri = String(decoding: bytes.prefix(first).buffer, as: UTF8.self)
    let rest = bytes.dropFirst(first + 1)
    if let second = rest.firstOffset(of: 1) {
        return (uri, String(decoding: rest.prefix(second).buffer, as: UTF8.self),
                String(decoding: rest.dropFirst(second + 1).buffer, as: UTF8.self))
    }
    return (uri, String(decoding: rest.buffer, as: UTF8.self), nil)
}

/// The names every stanza repeats (its own and its addresses'), answered with string literals:
/// no String is built from the bytes (measured at about 390 instructions a name, several per
/// stanza). Any other name, or one of these with a prefix, takes the general path.
@inline(__always)
private func commonName(_ p: UnsafeRawPointer, _ n: Int) -> (String, String, String?)? {
    @inline(__always) func equals(_ s: StaticString, at offset: Int = 0) -> Bool {
        n - offset == s.utf8CodeUnitCount && memcmp(p + offset, s.utf8Start, s.utf8CodeUnitCount) == 0
    }
    switch n {
    case 2:
        if equals("to") { return ("", "to", nil) }
        if equals("id") { return ("", "id", nil) }
    case 4:
        if equals("from") { return ("", "from", nil) }
        if equals("type") { return ("", "type", nil) }
    default:
        let server: StaticString = "jabber:server\u{1}"
        guard n > server.utf8CodeUnitCount, memcmp(p, server.utf8Start, server.utf8CodeUnitCount) == 0 else { return nil }
        let at = server.utf8CodeUnitCount
        if equals("message", at: at) { return ("jabber:server", "message", nil) }
        if equals("presence", at: at) { return ("jabber:server", "presence", nil) }
        if equals("iq", at: at) { return ("jabber:server", "iq", nil) }
        if equals("body", at: at) { return ("jabber:server", "body", nil) }
    }
    return nil
}

/// Calls `body` with the decoder a callback's user data points to. The decoder is alive: expat
/// calls back only from inside `XML_Parse`, which only the decoder's own methods call, and the
/// caller of such a method holds a reference to it for the whole call. Borrowing it instead of
/// taking a reference saves a retain and a release per callback (a dozen callbacks per stanza).
@inline(__always)
private func withDecoder(_ ud: UnsafeMutableRawPointer?, _ body: (XMPPStreamDecoder) -> Void) {
    Unmanaged<XMPPStreamDecoder>.fromOpaque(ud!)._withUnsafeGuaranteedRef(body)
}

private let onStart: XML_StartElementHandler = { ud, name, atts in withDecoder(ud) { $0.startElement(name!, atts) } }
private let onEnd: XML_EndElementHandler = { ud, _ in withDecoder(ud) { $0.endElement() } }
private let onText: XML_CharacterDataHandler = { ud, s, len in withDecoder(ud) { $0.characters(s!, len) } }
private let onNamespaceStart: XML_StartNamespaceDeclHandler = { ud, prefix, uri in withDecoder(ud) { $0.namespaceStart(prefix, uri) } }
private let onComment: XML_CommentHandler = { ud, _ in withDecoder(ud) { $0.restricted(.comment) } }
private let onProcessingInstruction: XML_ProcessingInstructionHandler = { ud, target, _ in
    let target = target.map { String(cString: $0) } ?? ""
    withDecoder(ud) { $0.restricted(.processingInstruction(target: target)) }
}
private let onXMLDeclaration: XML_XmlDeclHandler = { ud, _, encoding, _ in withDecoder(ud) { $0.xmlDeclaration(encoding) } }
private let onDoctype: XML_StartDoctypeDeclHandler = { ud, name, _, _, _ in withDecoder(ud) { $0.doctype(name) } }
