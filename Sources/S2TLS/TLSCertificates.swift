import S2Model
import SwiftASN1
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization

/// What one X.509 certificate of a TLS handshake says (parsed with swift-certificates; the DER
/// is never read by hand). Every string is wire text: escape it before showing it.
public struct TLSCertificateFacts: Sendable, Equatable {
    /// The subject as RFC 4514 text (`CN=a.example,O=Example`).
    public var subject: String
    /// The subject's last (most specific) common name.
    public var commonName: String?
    public var issuer: String
    /// subjectAltName dNSName entries (DNS-IDs).
    public var dnsNames: [String] = []
    /// subjectAltName otherName id-on-dnsSRV entries (SRV-IDs, RFC 4985), e.g. `_xmpp-server.a.example`.
    public var srvNames: [String] = []
    /// subjectAltName otherName id-on-xmppAddr entries (RFC 6120 §13.7.1.4).
    public var xmppAddrs: [String] = []
    /// Seconds since the Unix epoch.
    public var notBefore: Int64
    public var notAfter: Int64

    /// Whether the certificate was within its validity period at `time`.
    public func isValid(at time: Timestamp) -> Bool { notBefore <= time.seconds && time.seconds <= notAfter }

    public var selfIssued: Bool { subject == issuer }
}

/// How a certificate's names compare with the domain a stream claims.
public enum TLSNameMatch: Sendable, Equatable {
    /// The identifier that matched: "DNS-ID *.a.example", "CN-ID a.example", "SRV-ID …", "XmppAddr …".
    case matches(String)
    case mismatch
    /// The certificate could not be parsed, so its names are unknown.
    case unknown
}

/// The certificate chain one side sent in its Certificate handshake message.
///
/// A class: `TLSInfo` holds two of them and travels inline in every connection's parse state
/// (TLS or not), and a parsed `Certificate` is several hundred bytes — as a struct the pair cost
/// every connection ~1.3 KB (100,000 header connections under `--max-memory 64` peaked 19 MiB
/// higher); as a reference, 16 bytes.
public final class TLSCertificateChain: Sendable {
    public let direction: Direction
    /// The frame that completed the Certificate message.
    public let frame: FrameRef
    /// Certificates in the message.
    public let count: Int
    /// Facts of the first `maxParsed` certificates, leaf first; nil where one could not be parsed.
    public let certificates: [TLSCertificateFacts?]
    /// Why the leaf (or another certificate) could not be parsed.
    public let problems: [String]
    /// The parsed leaf, kept for name matching.
    let leaf: Certificate?

    /// Certificates parsed per message; more are only counted (a chain of real servers has 1–4).
    public static let maxParsed = 8
    /// Largest certificate parsed, in bytes.
    public static let maxCertificateBytes = 64 << 10

    public var leafFacts: TLSCertificateFacts? { certificates.first ?? nil }

    /// Parses the DER certificates of one Certificate message.
    init(direction: Direction, frame: FrameRef, der: [ArraySlice<UInt8>], count: Int) {
        self.direction = direction
        self.frame = frame
        self.count = count
        var leaf: Certificate?
        var problems: [String] = []
        var certificates: [TLSCertificateFacts?] = []
        for (i, bytes) in der.prefix(TLSCertificateChain.maxParsed).enumerated() {
            guard bytes.count <= TLSCertificateChain.maxCertificateBytes else {
                problems.append("certificate \(i + 1) has \(bytes.count) bytes, more than the \(TLSCertificateChain.maxCertificateBytes >> 10) KiB parsed")
                certificates.append(nil)
                continue
            }
            do {
                let c = try Certificate(derEncoded: Array(bytes))
                if i == 0 { leaf = c }
                certificates.append(TLSCertificateChain.facts(c))
            } catch {
                problems.append("certificate \(i + 1) is not a valid X.509 certificate (\(error))")
                certificates.append(nil)
            }
        }
        self.leaf = leaf
        self.problems = problems
        self.certificates = certificates
    }

    static let xmppAddr: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 8, 5]
    static let dnsSRV: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 8, 7]
    /// Names listed per kind and certificate (a hostile certificate may carry thousands).
    static let maxNames = 32

    static func facts(_ c: Certificate) -> TLSCertificateFacts {
        var f = TLSCertificateFacts(subject: c.subject.description,
                                    commonName: lastCommonName(c.subject),
                                    issuer: c.issuer.description,
                                    notBefore: seconds(c.notValidBefore), notAfter: seconds(c.notValidAfter))
        for name in (try? c.extensions.subjectAlternativeNames) ?? SubjectAlternativeNames() {
            switch name {
            case .dnsName(let d):
                if f.dnsNames.count < maxNames { f.dnsNames.append(d) }
            case .otherName(let other):
                guard let value = other.value else { continue }
                if other.typeID == xmppAddr, f.xmppAddrs.count < maxNames, let s = try? ASN1UTF8String(asn1Any: value) {
                    f.xmppAddrs.append(String(s))
                } else if other.typeID == dnsSRV, f.srvNames.count < maxNames, let s = try? ASN1IA5String(asn1Any: value) {
                    f.srvNames.append(String(s))
                }
            default:
                continue
            }
        }
        return f
    }

    static func lastCommonName(_ name: DistinguishedName) -> String? {
        for rdn in name.reversed() {
            for attribute in rdn.reversed() where attribute.type == .RDNAttributeType.commonName {
                return String(attribute.value) ?? attribute.value.description
            }
        }
        return nil
    }

    static func seconds(_ d: Date) -> Int64 {
        let t = d.timeIntervalSince1970
        guard t.isFinite else { return 0 }
        return Int64(max(min(t, 9e15), -9e15).rounded(.down))
    }

    /// Whether the leaf names `domain` (RFC 6125 §6 as XMPP uses it, RFC 6120 §13.7.2): a DNS-ID
    /// (wildcard in the leftmost label) — or, without any DNS-ID or IP address in the SAN, the
    /// common name — matched by swift-certificates' `ServerIdentityPolicy`; else an SRV-ID for
    /// `_xmpp-server` or an XmppAddr equal to the domain (case-insensitive).
    public func nameMatch(for domain: String) -> TLSNameMatch {
        guard let leaf, let facts = leafFacts else { return .unknown }
        let want = domain.lowercased().trimmingTrailingDot
        guard let identity = TLSCertificateChain.serverIdentityMatches(leaf, hostname: want) else { return .unknown }
        if identity {
            if let d = facts.dnsNames.first(where: { TLSCertificateChain.sameOrWildcard($0, want) }) { return .matches("DNS-ID \(d)") }
            return .matches(facts.dnsNames.isEmpty ? "CN-ID \(facts.commonName ?? "")" : "DNS-ID")
        }
        if let s = facts.srvNames.first(where: { $0.lowercased().trimmingTrailingDot == "_xmpp-server." + want }) { return .matches("SRV-ID \(s)") }
        if let x = facts.xmppAddrs.first(where: { $0.lowercased().trimmingTrailingDot == want }) { return .matches("XmppAddr \(x)") }
        return .mismatch
    }

    /// Which DNS-ID the policy matched, for the report only (the verdict is the policy's).
    static func sameOrWildcard(_ pattern: String, _ name: String) -> Bool {
        let p = pattern.lowercased().trimmingTrailingDot
        if p == name { return true }
        guard p.hasPrefix("*."), let dot = name.firstIndex(of: ".") else { return false }
        return p.dropFirst(2) == name[name.index(after: dot)...]
    }

    /// swift-certificates' RFC 6125 service identity check. It is reachable only through its
    /// asynchronous `Verifier`: the leaf is made its own trust anchor, so the one policy that
    /// decides is the name check, and the leaf's critical extensions count as handled (this
    /// judges names, not the chain's validity). With in-memory stores that verifier never
    /// suspends, so the task runs to its end on this thread (`Task.immediate`); should a later
    /// version suspend, the answer is nil (unknown) — the engine never blocks on a task.
    static func serverIdentityMatches(_ leaf: Certificate, hostname: String) -> Bool? {
        let critical = leaf.extensions.filter(\.critical).map(\.oid)
        let state = ResultBox()
        Task.immediate {
            var verifier = Verifier(rootCertificates: CertificateStore([leaf])) {
                CriticalExtensionsHandled(oids: critical)
                ServerIdentityPolicy(serverHostname: hostname, serverIP: nil)
            }
            let valid: Bool
            if case .validCertificate = await verifier.validate(leaf: leaf, intermediates: CertificateStore()) { valid = true } else { valid = false }
            state.value.store(valid ? ResultBox.matched : ResultBox.notMatched, ordering: .releasing)
        }
        switch state.value.load(ordering: .acquiring) {
        case ResultBox.matched: return true
        case ResultBox.notMatched: return false
        default: return nil
        }
    }

    final class ResultBox: Sendable {
        static let pending = 0, matched = 1, notMatched = 2
        let value = Atomic<Int>(ResultBox.pending)
    }

    /// Declares the leaf's critical extensions handled, so that the verifier reaches the name check.
    struct CriticalExtensionsHandled: VerifierPolicy {
        let oids: [ASN1ObjectIdentifier]
        var verifyingCriticalExtensions: [ASN1ObjectIdentifier] { oids }
        mutating func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult { .meetsPolicy }
    }
}

extension String {
    fileprivate var trimmingTrailingDot: String { hasSuffix(".") ? String(dropLast()) : self }
}
