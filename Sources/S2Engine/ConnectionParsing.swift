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
final class ConnectionParser: XMPPEventSink {
    private(set) var decoder: XMPPConnectionDecoder!
    private(set) var tls: TLSSession!
    // The sink outlives every parser (it is the connection's context or a worker of the run).
    unowned(unsafe) let output: ParseOutputSink

    init(connection: ConnectionID, configuration: EngineConfiguration, keys: TLSKeyStore?, output: ParseOutputSink,
         onDecrypted: ((ConnectionID, Direction, UnsafeRawBufferPointer, FrameRef) -> Void)?) {
        self.output = output
        decoder = XMPPConnectionDecoder(connection: connection, limits: configuration.xml, sink: self)
        let tls = TLSSession(connection: connection, keys: keys)
        tls.onPlaintext = { [unowned self] d, bytes, frame in
            onDecrypted?(connection, d, bytes, frame)
            self.decoder.decrypted(d, bytes, frame: frame)
        }
        tls.onAnomaly = { [unowned self] a in self.output.parsed(.anomaly(a)) }
        self.tls = tls
        decoder.tlsSink = tls
    }

    func xmppEvent(_ event: XMPPEvent) { output.parsed(.event(event)) }
    func xmppAnomaly(_ anomaly: Anomaly) { output.parsed(.anomaly(anomaly)) }

    func feed(_ d: Direction, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef) {
        decoder.feed(d, bytes, at: offset, frame: frame)
    }

    /// The capture did not see direction `d` start (before its first bytes are fed).
    func startsMidstream(_ d: Direction) { decoder.decoder(d).startsMidstream() }

    func gap(_ d: Direction, at offset: UInt64, length: UInt64, frame: FrameRef) {
        decoder.gap(d, at: offset, length: length, frame: frame)
    }

    /// Ends both streams (pending events are emitted) and reports what the close needs.
    func finish() {
        tls.tlsFinish()
        decoder.finish()
        output.parsed(.closed(ParseSummary(tls: decoder.tls,
                                           bytesAfterTLS: decoder.initiator.encryptedBytes + decoder.acceptor.encryptedBytes,
                                           tlsInfo: tls.info, tlsReportedProblem: tls.reportedProblem)))
    }
}
