import S2Model
import S2TLS
import S2XMPP

/// What parsing one connection's bytes produces, in the order it was produced.
enum ParseOutput {
    case event(XMPPEvent)
    case anomaly(Anomaly)
    /// The connection ended: what the parse side knows that the close report needs.
    case closed(ParseSummary)
}

/// What the parse side of a connection knows when it ends.
struct ParseSummary {
    /// `<proceed/>` (or direct TLS) switched the connection to TLS.
    var tls: Bool
    /// Bytes after the switch to TLS, both directions.
    var bytesAfterTLS: UInt64
    var tlsInfo: TLSInfo
    /// The TLS session already reported why it could not decrypt.
    var tlsReportedProblem: Bool
}

/// Receives a connection's parse output: the engine itself (one thread), or a parse worker
/// that hands it back to the engine in capture order (`--threads`).
protocol ParseOutputSink: AnyObject {
    func parsed(_ output: ParseOutput)
}

/// The XMPP decoders and the TLS session of one connection. It reads only that connection's
/// bytes and touches no shared state, so any thread may run it — one at a time.
final class ConnectionParser: XMPPEventSink, TLSRecordSink {
    private(set) var decoder: XMPPConnectionDecoder!
    /// Made when the first TLS record arrives: most connections never need one (memory per connection).
    private var tlsSession: TLSSession?
    private let connection: ConnectionID
    private let keys: TLSKeyStore?
    private let onDecrypted: ((ConnectionID, Direction, UnsafeRawBufferPointer, FrameRef) -> Void)?
    // The sink outlives every parser (it is the connection's context or a worker of the run).
    unowned(unsafe) let output: ParseOutputSink

    init(connection: ConnectionID, configuration: EngineConfiguration, keys: TLSKeyStore?, output: ParseOutputSink,
         onDecrypted: ((ConnectionID, Direction, UnsafeRawBufferPointer, FrameRef) -> Void)?, parserCount: ParserCount? = nil) {
        self.output = output
        self.connection = connection
        self.keys = keys
        self.onDecrypted = onDecrypted
        decoder = XMPPConnectionDecoder(connection: connection, limits: configuration.xml, sink: self, parserCount: parserCount)
        decoder.tlsSink = self
    }

    /// Handed to the TLS session when one is made (see `TLSSession.onWaitEnded`).
    var onTLSWaitEnded: (() -> Void)?

    var tls: TLSSession {
        if let s = tlsSession { return s }
        let s = TLSSession(connection: connection, keys: keys)
        s.onWaitEnded = onTLSWaitEnded
        let connection = connection, onDecrypted = onDecrypted
        s.onPlaintext = { [unowned self] d, bytes, frame in
            onDecrypted?(connection, d, bytes, frame)
            self.decoder.decrypted(d, bytes, frame: frame)
        }
        s.onAnomaly = { [unowned self] a in self.output.parsed(.anomaly(a)) }
        tlsSession = s
        return s
    }

    func tlsBytes(_ direction: Direction, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef) {
        tls.tlsBytes(direction, bytes, at: offset, frame: frame)
    }

    func tlsGap(_ direction: Direction, at offset: UInt64, length: UInt64, frame: FrameRef) {
        tls.tlsGap(direction, at: offset, length: length, frame: frame)
    }

    func xmppEvent(_ event: XMPPEvent) { output.parsed(.event(event)) }
    func xmppAnomaly(_ anomaly: Anomaly) { output.parsed(.anomaly(anomaly)) }

    /// `parksWhenIdle`: whether a stream that waits after its header frees its expat parser
    /// (decided by the engine in capture order, so that no thread count changes the parsers it
    /// charges to the memory budget).
    func feed(_ d: Direction, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef, parksWhenIdle: Bool) {
        if decoder.parksWhenIdle != parksWhenIdle { decoder.parksWhenIdle = parksWhenIdle }
        decoder.feed(d, bytes, at: offset, frame: frame)
    }

    /// The capture did not see direction `d` start (before its first bytes are fed).
    func startsMidstream(_ d: Direction) { decoder.decoder(d).startsMidstream() }

    func gap(_ d: Direction, at offset: UInt64, length: UInt64, frame: FrameRef) {
        decoder.gap(d, at: offset, length: length, frame: frame)
    }

    /// Ends both streams (pending events are emitted) and reports what the close needs.
    func finish() {
        tlsSession?.tlsFinish()
        decoder.finish()
        output.parsed(.closed(ParseSummary(tls: decoder.tls,
                                           bytesAfterTLS: decoder.initiator.encryptedBytes + decoder.acceptor.encryptedBytes,
                                           tlsInfo: tlsSession?.info ?? TLSSession(connection: connection, keys: keys).info,
                                           tlsReportedProblem: tlsSession?.reportedProblem ?? false)))
    }
}
