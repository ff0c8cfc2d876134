import S2Model
import S2XMPP

/// One step of a dialback exchange, for reports and sequence diagrams.
public struct DialbackStep: Sendable {
    public enum Kind: String, Sendable {
        case resultRequest = "db:result"
        case verifyRequest = "db:verify"
        case verifyReply = "db:verify reply"
        case resultReply = "db:result reply"
    }
    public var kind: Kind
    public var connection: ConnectionID
    public var direction: Direction
    public var frame: FrameRef
    /// `type` of a reply.
    public var type: String?
    public var summary: String
    /// The element carried an `id` attribute, and text (a key): what a typed db:result reply
    /// need not carry (the report's per-server profile).
    public var carriesID = false
    public var carriesKey = false
}

/// One Server Dialback exchange (XEP-0220 steps 1–4, RFC 3920 §8.3 steps 4–10): the
/// db:result the Originating Server sent on connection A, the db:verify the Receiving Server
/// sent to the Authoritative Server on whatever connection, the AS's verdict, and the RS's
/// answer on A.
public final class DialbackExchange: @unchecked Sendable {
    public let number: Int
    /// Sender domain S (db:result `from`).
    public let originating: String
    /// Target domain T (db:result `to`).
    public let receiving: String
    /// The RS's stream ID on connection A — what the key is bound to.
    public let streamID: String?
    public let key: String
    public let resultConnection: ConnectionID
    public let resultFrame: FrameRef
    /// The direction the db:result request travelled on its connection (initiator → acceptor
    /// except on a XEP-0288 bidi connection).
    public let resultDirection: Direction
    public internal(set) var verifyConnection: ConnectionID?
    public internal(set) var verifyFrame: FrameRef?
    public internal(set) var verifyKey: String?
    /// The `id` the db:verify request carried (the stream id it asks about).
    public internal(set) var verifyStreamID: String?
    public internal(set) var verifyReplyFrame: FrameRef?
    /// The AS's answer: valid, invalid or error.
    public internal(set) var verifyType: String?
    public internal(set) var resultReplyFrame: FrameRef?
    /// The RS's answer: valid, invalid, error; nil while pending.
    public internal(set) var outcome: String?
    public internal(set) var steps: [DialbackStep] = []
    /// Addresses of the parties as seen on the wire (originating, receiving, authoritative).
    public internal(set) var originatingAddress: String
    public internal(set) var receivingAddress: String
    public internal(set) var authoritativeAddress: String?
    /// A live run forgot it with its connection.
    var forgotten = false
    /// An offline run wrote it to the exchange archive; it comes back to memory if a late
    /// db:verify reaches it (`DialbackModel.boundResult`).
    var spilled = false

    convenience init(number: Int, pair: DomainPair, streamID: String?, key: String,
                     connection: ConnectionModel, direction: Direction, frame: FrameRef) {
        self.init(number: number, originating: pair.sender, receiving: pair.target, streamID: streamID, key: key,
                  resultConnection: connection.id, resultFrame: frame, resultDirection: direction,
                  originatingAddress: connection.address(of: direction),
                  receivingAddress: connection.address(of: direction.reversed))
    }

    /// An exchange with its db:result only (as the model makes it, or as the archive recorded it
    /// before the rest is set).
    init(number: Int, originating: String, receiving: String, streamID: String?, key: String,
         resultConnection: ConnectionID, resultFrame: FrameRef, resultDirection: Direction,
         originatingAddress: String, receivingAddress: String) {
        self.number = number
        self.originating = originating
        self.receiving = receiving
        self.streamID = streamID
        self.key = key
        self.resultConnection = resultConnection
        self.resultFrame = resultFrame
        self.resultDirection = resultDirection
        self.originatingAddress = originatingAddress
        self.receivingAddress = receivingAddress
    }

    public var id: String { "D\(number)" }
    public var pair: DomainPair { DomainPair(sender: originating, target: receiving) }
    public var outcomeName: String { outcome ?? "pending" }
}
