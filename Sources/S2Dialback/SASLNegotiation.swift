import S2Model
import S2XMPP

/// One SASL negotiation on a connection (RFC 6120 §6; on s2s normally EXTERNAL with the TLS
/// certificate, XEP-0178): what the acceptor offered, what the initiator asked for, and how
/// it ended.
public struct SASLNegotiation: Sendable, Equatable {
    public enum Outcome: String, Sendable {
        case pending, success, failure, aborted
    }

    public var mechanism: String
    /// The initial response as sent (nil: no character data; "=": present but empty).
    public var initialResponse: String?
    /// The authorization identity the initial response carries (base64-decoded), if any.
    public var authzid: String?
    /// The initial response is neither "=" nor base64 (RFC 6120 §6.4.2).
    public var malformedResponse = false
    /// The initial stream's `from` and `to` when `<auth/>` was sent.
    public var initiating: String?
    public var receiving: String?
    /// The mechanisms the acceptor's latest features offered.
    public var offered: [String]
    /// The negotiation ran inside TLS.
    public var overTLS: Bool
    public var authFrame: FrameRef
    public var outcome: Outcome = .pending
    /// The `<failure/>` condition (RFC 6120 §6.5), if any.
    public var condition: String?
    public var outcomeFrame: FrameRef?
    /// The acceptor's stream ID before the negotiation and after the restart that followed success.
    public var streamIDBefore: String?
    public var streamIDAfter: String?

    /// The domain a successful negotiation authenticated (RFC 6120 §6.4.6, XEP-0178 §3): the
    /// authorization identity when the initiator gave one, else its stream's `from`.
    public var domain: String? {
        guard outcome == .success else { return nil }
        if let a = authzid, !a.isEmpty { return a }
        return initiating
    }
}

/// The SASL conditions of RFC 6120 §6.5.
public enum SASLCondition {
    public static let defined: Set<String> = [
        "aborted", "account-disabled", "credentials-expired", "encryption-required", "incorrect-encoding",
        "invalid-authzid", "invalid-mechanism", "malformed-request", "mechanism-too-weak", "not-authorized",
        "temporary-auth-failure",
    ]
}

extension DialbackModel {
    /// Applies a top-level element of the SASL namespace (`auth`, `success`, `failure`, …).
    func sasl(_ el: XMLElement, _ e: XMPPEvent, on c: ConnectionModel) {
        let forward = e.direction == .clientToServer
        switch el.local {
        case "auth" where forward:
            var n = SASLNegotiation(mechanism: el[attribute: "mechanism"] ?? "", initiating: c.initialHeader?.from,
                                    receiving: c.initialHeader?.to, offered: c.offeredMechanisms, overTLS: c.tls,
                                    authFrame: e.firstFrame, streamIDBefore: c.streamID)
            let text = el.trimmedText
            if !text.isEmpty {
                n.initialResponse = text
                if text != "=" {
                    if let bytes = base64Bytes(text) {
                        n.authzid = String(decoding: bytes, as: UTF8.self)
                    } else {
                        n.malformedResponse = true
                    }
                }
            }
            if c.sasl.count < ConnectionModel.maxSASLNegotiations { c.sasl.append(n) }
        case "success" where !forward:
            guard let i = c.sasl.lastIndex(where: { $0.outcome == .pending }) else {
                c._saslSucceeded = true  // the <auth/> was not seen (midstream): the identity is unknown
                c.saslRestart = PerDirection(repeating: true)
                return
            }
            c.sasl[i].outcome = .success
            c.sasl[i].outcomeFrame = e.firstFrame
            c._saslSucceeded = true
            c.saslDomain = c.sasl[i].domain
            c.saslRestart = PerDirection(repeating: true)
        case "failure" where !forward:
            guard let i = c.sasl.lastIndex(where: { $0.outcome == .pending }) else { return }
            let cond = el.children.first { $0.namespace == Namespace.sasl && $0.local != "text" }?.local
            c.sasl[i].outcome = cond == "aborted" ? .aborted : .failure
            c.sasl[i].condition = cond
            c.sasl[i].outcomeFrame = e.firstFrame
        default:
            break
        }
    }

    /// The mechanisms a `<stream:features/>` offers.
    static func mechanisms(in features: XMLElement) -> [String] {
        guard let m = features.child("mechanisms", namespace: Namespace.sasl) else { return [] }
        return m.children.filter { $0.local == "mechanism" }.map(\.trimmedText)
    }
}

/// RFC 4648 §4 base64 (with padding); nil when `text` is not base64.
public func base64Bytes(_ text: String) -> [UInt8]? {
    var out: [UInt8] = []
    var acc: UInt32 = 0
    var bits = 0
    var padding = 0
    var count = 0
    for c in text.utf8 {
        let v: UInt32
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = UInt32(c - UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): v = UInt32(c - UInt8(ascii: "a") + 26)
        case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt32(c - UInt8(ascii: "0") + 52)
        case UInt8(ascii: "+"): v = 62
        case UInt8(ascii: "/"): v = 63
        case UInt8(ascii: "="):
            padding += 1
            count += 1
            continue
        default:
            return nil
        }
        guard padding == 0 else { return nil }  // data after padding
        count += 1
        acc = acc << 6 | v
        bits += 6
        if bits >= 8 {
            bits -= 8
            out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            acc &= (1 << UInt32(bits)) - 1
        }
    }
    guard count % 4 == 0, padding <= 2 else { return nil }
    return out
}
