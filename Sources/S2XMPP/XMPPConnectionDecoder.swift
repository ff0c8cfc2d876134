import S2Model

/// Both directions of one XMPP connection. Applies the two events that change how the
/// *other* direction must be read: `<proceed/>` (both directions become TLS) and SASL
/// `<success/>` (both streams restart).
public final class XMPPConnectionDecoder: XMPPEventSink {
    public var initiator: XMPPStreamDecoder { _initiator }
    var _initiator: XMPPStreamDecoder!
    public var acceptor: XMPPStreamDecoder { _acceptor }
    var _acceptor: XMPPStreamDecoder!
    public unowned let sink: XMPPEventSink
    public let connection: ConnectionID
    /// True once `<proceed/>` switched the connection to TLS.
    public private(set) var tls = false
    /// Takes both directions' TLS records after `<proceed/>` (the engine injects a decryptor);
    /// nil: they are only counted. Not retained (the owner of this decoder keeps it: it is
    /// usually the owner itself).
    public weak var tlsSink: TLSRecordSink? {
        didSet {
            initiator.tlsSink = tlsSink
            acceptor.tlsSink = tlsSink
        }
    }

    /// Whether a direction that waits after its stream header frees its expat parser
    /// (`XMPPStreamDecoder.parksWhenIdle`).
    public var parksWhenIdle = true {
        didSet {
            initiator.parksWhenIdle = parksWhenIdle
            acceptor.parksWhenIdle = parksWhenIdle
        }
    }

    public init(connection: ConnectionID, limits: XMLLimits = .init(), sink: XMPPEventSink, parserCount: ParserCount? = nil) {
        self.connection = connection
        self.sink = sink
        _initiator = XMPPStreamDecoder(direction: .clientToServer, limits: limits, sink: self)
        _acceptor = XMPPStreamDecoder(direction: .serverToClient, limits: limits, sink: self)
        initiator.connection = connection
        acceptor.connection = connection
        initiator.parserCount = parserCount
        acceptor.parserCount = parserCount
    }

    public func decoder(_ d: Direction) -> XMPPStreamDecoder { d == .clientToServer ? initiator : acceptor }

    public func feed(_ d: Direction, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef) {
        decoder(d).feed(bytes, at: offset, frame: frame)
    }

    public func gap(_ d: Direction, at offset: UInt64, length: UInt64, frame: FrameRef) {
        decoder(d).gap(at: offset, length: length, frame: frame)
    }

    /// Decrypted application data of direction `d`: parsed as the stream restarted inside TLS.
    public func decrypted(_ d: Direction, _ bytes: UnsafeRawBufferPointer, frame: FrameRef) {
        decoder(d).feedDecrypted(bytes, frame: frame)
    }

    public func finish() {
        initiator.finish()
        acceptor.finish()
    }

    public func xmppEvent(_ event: XMPPEvent) {
        if case .tlsStarted = event.kind { tls = true }  // after <proceed/>, or direct TLS
        sink.xmppEvent(event)
        guard case .element(let el) = event.kind else { return }
        let from = decoder(event.direction)
        let other = decoder(event.direction.reversed)
        if el.is("proceed", Namespace.tls) {
            tls = true
            from.stopForTLSAfterCurrentElement()
            other.switchToTLS()
        } else if el.is("success", Namespace.sasl) {
            from.restartAfterCurrentElement()
            other.restart()
        }
    }

    public func xmppAnomaly(_ anomaly: Anomaly) { sink.xmppAnomaly(anomaly) }
}
