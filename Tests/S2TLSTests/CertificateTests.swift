import Crypto
import Foundation
import SwiftASN1
import Testing
import X509
import S2Engine
import S2Model
import S2Report
@testable import S2TLS

/// Certificates of TLS handshakes: the facts the reports give (subject, issuer, validity, SAN,
/// chain) from real servers' certificates, and name matching against the claimed domain on
/// certificates made here with swift-certificates.
struct CertificateTests {
    static func analyze(_ capture: String, keylogs: [String] = []) throws -> AnalysisReport {
        try ServerFixtureTests.run(fixture(capture), keylogs: keylogs.map(fixture)).0
    }

    /// "C1 server" → the report's certificate.
    static func certificates(_ r: AnalysisReport) -> [String: TLSCertificateReport] {
        var out: [String: TLSCertificateReport] = [:]
        for (id, t) in r.tlsInfo {
            if let c = t.serverCertificate { out["\(id) server"] = c }
            if let c = t.clientCertificate { out["\(id) client"] = c }
        }
        return out
    }

    /// TLS 1.2: the certificates travel in clear, so they are read without a key log. The lab CA
    /// case: leaf and CA, both sides; values as openssl prints them from tshark's export.
    @Test func labCAChainsInClearTLS12() throws {
        let r = try Self.analyze("servers-sasl-tls12.pcap")
        let c = Self.certificates(r)
        #expect(c.keys.sorted() == ["C1 client", "C1 server", "C2 client", "C2 server"])
        let e = try #require(c["C1 server"])
        #expect(e.frame.number == 15 && e.chainLength == 2)
        #expect(e.subject == "CN=e.lab" && e.commonName == "e.lab" && e.issuer == "CN=S2Scope lab CA")
        #expect(e.dnsNames == ["e.lab"] && e.srvNames.isEmpty && e.xmppAddrs.isEmpty)
        #expect(e.notBefore?.rfc3339 == "2026-12-06T01:59:14.000000Z" && e.notAfter?.rfc3339 == "2036-12-03T01:59:14.000000Z")
        #expect(e.validAtTime == true && e.selfIssued == false)
        #expect(e.expectedName == "e.lab" && e.nameMatch == "matches" && e.matchedBy == "DNS-ID e.lab")
        #expect(e.chain.count == 1 && e.chain[0].subject == "CN=S2Scope lab CA" && e.chain[0].issuer == "CN=S2Scope lab CA")
        let a = try #require(c["C1 client"])
        #expect(a.frame.number == 16 && a.subject == "CN=a.lab" && a.issuer == "CN=S2Scope lab CA")
        #expect(a.notBefore?.rfc3339 == "2026-12-06T01:59:12.000000Z" && a.notAfter?.rfc3339 == "2036-12-03T01:59:12.000000Z")
        #expect(a.expectedName == "a.lab" && a.nameMatch == "matches", "the initiator's certificate names its stream 'from'")
        #expect(c["C2 server"]?.frame.number == 39 && c["C2 server"]?.subject == "CN=a.lab")
        #expect(c["C2 client"]?.frame.number == 40 && c["C2 client"]?.subject == "CN=e.lab")
    }

    /// TLS 1.3: the certificates are encrypted; with the key log they are read (same facts as
    /// in the TLS 1.2 capture of the same lab); without it they are not there.
    @Test func tls13CertificatesNeedTheKeyLog() throws {
        let without = try Self.analyze("servers-dialback-tls13.pcap")
        #expect(!without.tlsInfo.isEmpty && Self.certificates(without).isEmpty)
        let r = try Self.analyze("servers-dialback-tls13.pcap", keylogs: ["servers-dialback-tls13.prosody.keylog"])
        let c = Self.certificates(r)
        #expect(c.count == 6, "both sides of three connections: \(c.keys.sorted())")
        for (key, cert) in c {
            let domain = cert.subject == "CN=a.lab" ? "a.lab" : "e.lab"
            #expect(cert.subject == cert.issuer && cert.selfIssued == true, "\(key): self-signed")
            #expect(cert.chainLength == 1 && cert.chain.isEmpty)
            #expect(cert.dnsNames == [domain] && cert.expectedName == domain && cert.nameMatch == "matches", "\(key)")
            #expect(cert.validAtTime == true)
        }
        #expect(c["C1 server"]?.frame.number == 15 && c["C1 server"]?.subject == "CN=e.lab")
        #expect(c["C1 server"]?.notBefore?.rfc3339 == "2026-12-06T01:59:13.000000Z")
        #expect(c["C1 server"]?.notAfter?.rfc3339 == "2036-12-03T01:59:13.000000Z")
        #expect(c["C1 client"]?.frame.number == 17 && c["C1 client"]?.subject == "CN=a.lab")
        #expect(c["C3 server"]?.frame.number == 62 && c["C3 client"]?.frame.number == 63)
    }

    /// Prosody's self-signed a.lab certificate and the Python peer's evil.lab one (TLS 1.2); asked
    /// for one, the peer answers with an empty Certificate message.
    @Test func prosodyAndPeerCertificates() throws {
        var c = Self.certificates(try Self.analyze("prosody-tls12.pcap"))
        #expect(c.keys.sorted() == ["C1 client", "C1 server", "C2 server", "C3 client", "C3 server"])
        for key in ["C1 client", "C3 client"] {
            let removed = c.removeValue(forKey: key)
            let empty = try #require(removed)
            #expect(empty.chainLength == 0 && empty.subject == nil && empty.expectedName == "evil.lab" && empty.nameMatch == "no-certificate")
            #expect(empty.summary == "no certificate (an empty Certificate message)")
        }
        #expect(c["C1 client"] == nil)
        #expect(c["C1 server"]?.subject == "CN=a.lab" && c["C1 server"]?.frame.number == 11)
        #expect(c["C1 server"]?.notBefore?.rfc3339 == "2026-11-25T15:43:43.000000Z" && c["C1 server"]?.notAfter?.rfc3339 == "2036-11-22T15:43:43.000000Z")
        #expect(c["C2 server"]?.subject == "CN=evil.lab" && c["C2 server"]?.frame.number == 27 && c["C2 server"]?.expectedName == "evil.lab")
        #expect(c["C3 server"]?.subject == "CN=a.lab" && c["C3 server"]?.frame.number == 43)
        #expect(c.values.allSatisfy { $0.nameMatch == "matches" && $0.validAtTime == true })
    }

    /// TLS facts in every output (#18): version, suite, SNI, each side's certificate subject,
    /// issuer, validity and whether it names the claimed domain, in the compact and verbose text,
    /// JSON and HTML. C2 of the lab CA capture as tshark shows it: ServerHello 0x0303 / 0xc030,
    /// SNI a.lab; the certificates as openssl prints them (labCAChainsInClearTLS12).
    @Test func tlsFactsInEveryOutput() throws {
        let r = try Self.analyze("servers-sasl-tls12.pcap")
        let text = TextReport(color: false, verbose: false).render(r)
        let c2 = try #require(text.split(separator: "\n").first { $0.hasPrefix("  C2  ") })
        #expect(c2 == "  C2  TLS 1.2 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, sni 'a.lab', "
                + "server 'CN=a.lab' issued by 'CN=S2Scope lab CA' valid 2026-12-06…2036-12-03 names 'a.lab', "
                + "client 'CN=e.lab' issued by 'CN=S2Scope lab CA' valid 2026-12-06…2036-12-03 names 'e.lab', no-keylog")

        let verbose = TextReport(color: false, verbose: true).render(r)
        #expect(verbose.contains("tls: TLS 1.2, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, sni 'a.lab', 2 server certificates, 2 client certificates"))
        #expect(verbose.contains("server certificate (frame 39): 'CN=a.lab' issued by 'CN=S2Scope lab CA', valid 2026-12-06…2036-12-03, names 'a.lab': yes (DNS-ID a.lab), chain of 2"))
        #expect(verbose.contains("client certificate (frame 40): 'CN=e.lab' issued by 'CN=S2Scope lab CA', valid 2026-12-06…2036-12-03, names 'e.lab': yes (DNS-ID e.lab), chain of 2"))

        let document = try JSONSerialization.jsonObject(with: Data(JSONReport.document(r).utf8)) as? [String: Any]
        let connections = try #require(document?["connections"] as? [[String: Any]])
        let tls = try #require(connections.first { $0["id"] as? String == "C2" }?["tls_info"] as? [String: Any])
        #expect(tls["version"] as? String == "TLS 1.2" && tls["cipher_suite"] as? String == "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")
        #expect(tls["sni"] as? String == "a.lab")
        let server = try #require(tls["server_certificate"] as? [String: Any])
        #expect(server["subject"] as? String == "CN=a.lab" && server["issuer"] as? String == "CN=S2Scope lab CA")
        #expect(server["not_before"] as? String == "2026-12-06T01:59:12.000000Z" && server["not_after"] as? String == "2036-12-03T01:59:12.000000Z")
        #expect(server["valid_at_time"] as? Bool == true && server["expected_name"] as? String == "a.lab" && server["name_match"] as? String == "matches")
        let client = try #require(tls["client_certificate"] as? [String: Any])
        #expect(client["subject"] as? String == "CN=e.lab" && client["expected_name"] as? String == "e.lab" && client["name_match"] as? String == "matches")

        let page = HTMLReport().render(r)
        #expect(page.contains("TLS 1.2 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 · sni <q>a.lab</q>"))
        #expect(page.contains("<div class=\"cert\" data-side=\"server\" data-name-match=\"matches\"><span class=\"dir\">server certificate</span> (frame 39) "
                              + "<q>CN=a.lab</q> issued by <q>CN=S2Scope lab CA</q> · valid 2026-12-06…2036-12-03 · SAN DNS:a.lab · "
                              + "names <q>a.lab</q>: <span class=\"ok\">yes (DNS-ID a.lab)</span>"))
        #expect(page.contains("(frame 40) <q>CN=e.lab</q> issued by <q>CN=S2Scope lab CA</q>"))
    }

    /// A side that answers a CertificateRequest with an empty Certificate message (the Python
    /// peer in prosody-tls12, frames 12 and 44 per tshark) says so in every output; a self-issued
    /// certificate says that instead of an issuer.
    @Test func emptyAndSelfIssuedCertificatesInEveryOutput() throws {
        let r = try Self.analyze("prosody-tls12.pcap")
        let text = TextReport(color: false, verbose: false).render(r)
        let c1 = try #require(text.split(separator: "\n").first { $0.hasPrefix("  C1  ") })
        #expect(c1.contains("server 'CN=a.lab' (self-issued) valid 2026-11-25…2036-11-22 names 'a.lab', client sent no certificate"), "\(c1)")
        let verbose = TextReport(color: false, verbose: true).render(r)
        #expect(verbose.contains("client certificate (frame 12): no certificate (an empty Certificate message)"))
        #expect(verbose.contains("client certificate (frame 44): no certificate (an empty Certificate message)"))
        let json = JSONReport.document(r)
        #expect(json.contains("\"name_match\": \"no-certificate\""))
        let page = HTMLReport().render(r)
        #expect(page.contains("data-side=\"client\" data-name-match=\"no-certificate\"><span class=\"dir\">client certificate</span>"))
        #expect(page.contains("none (an empty Certificate message)"))
    }

    // MARK: - Certificates made here

    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func make(cn: String?, sans: [GeneralName] = [], notBefore: Date = t0, notAfter: Date = t0 + 86_400 * 365,
                     criticalBasicConstraints: Bool = false) throws -> [UInt8] {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { if let cn { CommonName(cn) } }
        let extensions = try Certificate.Extensions {
            if criticalBasicConstraints { Critical(BasicConstraints.notCertificateAuthority) }
            if !sans.isEmpty { SubjectAlternativeNames(sans) }
        }
        let c = try Certificate(version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: notBefore,
                                notValidAfter: notAfter, issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
                                extensions: extensions, issuerPrivateKey: .init(key))
        var s = DER.Serializer()
        try s.serialize(c)
        return s.serializedBytes
    }

    static func chain(_ der: [UInt8]...) -> TLSCertificateChain {
        TLSCertificateChain(direction: .serverToClient, frame: FrameRef(input: 0, number: 7, time: Timestamp(seconds: 1_800_000_100, nanoseconds: 0)),
                            der: der.map { $0[...] }, count: der.count)
    }

    static func otherName(_ oid: ASN1ObjectIdentifier, utf8 value: String) throws -> GeneralName {
        .otherName(.init(typeID: oid, value: try ASN1Any(erasing: ASN1UTF8String(value))))
    }

    static func otherName(_ oid: ASN1ObjectIdentifier, ia5 value: String) throws -> GeneralName {
        .otherName(.init(typeID: oid, value: try ASN1Any(erasing: ASN1IA5String(value))))
    }

    @Test func dnsIDsWithWildcardsPerRFC6125() throws {
        let wild = Self.chain(try Self.make(cn: "ignored.example", sans: [.dnsName("*.a.example"), .dnsName("b.example")]))
        #expect(wild.nameMatch(for: "chat.a.example") == .matches("DNS-ID *.a.example"))
        #expect(wild.nameMatch(for: "CHAT.A.Example.") == .matches("DNS-ID *.a.example"), "case and a trailing dot do not matter")
        #expect(wild.nameMatch(for: "b.example") == .matches("DNS-ID b.example"))
        #expect(wild.nameMatch(for: "a.example") == .mismatch, "a wildcard needs a label")
        #expect(wild.nameMatch(for: "x.chat.a.example") == .mismatch, "a wildcard covers one label")
        #expect(wild.nameMatch(for: "ignored.example") == .mismatch, "with DNS-IDs the common name is not used")
        #expect(wild.leafFacts?.dnsNames == ["*.a.example", "b.example"] && wild.leafFacts?.commonName == "ignored.example")
    }

    @Test func commonNameOnlyWithoutSubjectAltName() throws {
        let cnOnly = Self.chain(try Self.make(cn: "legacy.example", criticalBasicConstraints: true))
        #expect(cnOnly.nameMatch(for: "legacy.example") == .matches("CN-ID legacy.example"),
                "a critical extension does not stop the name check")
        #expect(cnOnly.nameMatch(for: "other.example") == .mismatch)
    }

    @Test func xmppIdentifiersInOtherName() throws {
        let xmpp = Self.chain(try Self.make(cn: nil, sans: [try Self.otherName(TLSCertificateChain.xmppAddr, utf8: "im.example"),
                                                            try Self.otherName(TLSCertificateChain.dnsSRV, ia5: "_xmpp-server.srv.example")]))
        #expect(xmpp.leafFacts?.xmppAddrs == ["im.example"] && xmpp.leafFacts?.srvNames == ["_xmpp-server.srv.example"])
        #expect(xmpp.nameMatch(for: "IM.example") == .matches("XmppAddr im.example"))
        #expect(xmpp.nameMatch(for: "srv.example") == .matches("SRV-ID _xmpp-server.srv.example"))
        #expect(xmpp.nameMatch(for: "other.example") == .mismatch)
        let clientSRV = Self.chain(try Self.make(cn: nil, sans: [try Self.otherName(TLSCertificateChain.dnsSRV, ia5: "_xmpp-client.c.example")]))
        #expect(clientSRV.nameMatch(for: "c.example") == .mismatch, "an _xmpp-client SRV-ID does not name a server")
    }

    @Test func validityPeriodAtTheConnectionsTime() throws {
        let expired = Self.chain(try Self.make(cn: "old.example", notBefore: Self.t0 - 86_400 * 400, notAfter: Self.t0 - 86_400))
        let facts = try #require(expired.leafFacts)
        #expect(facts.notAfter == 1_800_000_000 - 86_400)
        #expect(!facts.isValid(at: expired.frame.time))
        let future = Self.chain(try Self.make(cn: "new.example", notBefore: Self.t0 + 3_600))
        #expect(future.leafFacts?.isValid(at: future.frame.time) == false)
        let now = Self.chain(try Self.make(cn: "ok.example"))
        #expect(now.leafFacts?.isValid(at: now.frame.time) == true)
        // Through the engine's report view: the claimed domain, the verdicts, the summary.
        let report = Engine.certificateReport(expired, claimed: "old.example")
        #expect(report.validAtTime == false && report.nameMatch == "matches" && report.notAfter?.rfc3339 == "2027-01-14T08:00:00.000000Z")
        #expect(report.summary.contains("NOT at the connection's time"))
    }

    /// Certificate text is wire text: markup and terminal controls in a subject or a SAN come out
    /// inert in the text report (both views) and the HTML page; JSON escapes them.
    @Test func certificateTextIsEscapedEverywhere() throws {
        let evil = "\u{1b}]0;pwned\u{07}<script>alert(1)</script>\u{202e}"
        let chain = Self.chain(try Self.make(cn: evil, sans: [.dnsName("<img src=x onerror=alert(1)>.example")]))
        let report = try Self.analyze("servers-sasl-tls12.pcap")
        let id = try #require(report.tlsInfo.keys.min())
        report.tlsInfo[id]?.serverCertificate = Engine.certificateReport(chain, claimed: "a\u{1b}[2J.example")
        #expect(report.tlsInfo[id]?.serverCertificate?.nameMatch == "mismatch")
        for verbose in [false, true] {
            let text = TextReport(color: false, verbose: verbose).render(report)
            // The subject is RFC 4514 text (swift-certificates escapes ';', '<', '>'), then made terminal-safe.
            #expect(text.contains("CN=\\x1b]0\\;pwned\\x07\\<script\\>alert(1)\\</script\\>\\u{202e}"), "verbose \(verbose)")
            #expect(text.contains(verbose ? "names 'a\\x1b[2J.example': NO" : "does NOT name 'a\\x1b[2J.example'"))
            for bad: Unicode.Scalar in ["\u{1b}", "\u{07}", "\u{202e}"] { #expect(!text.unicodeScalars.contains(bad)) }
        }
        let page = HTMLReport().render(report)
        #expect(page.contains("\\&lt;script\\&gt;alert(1)\\&lt;/script\\&gt;") && page.contains("&lt;img src=x onerror=alert(1)&gt;.example"))
        #expect(!page.contains("<img") && page.components(separatedBy: "<script").count == 3, "only the report's own scripts")
        #expect(page.components(separatedBy: "<script>").dropFirst().map { $0.components(separatedBy: "</script>")[0] } == [HTMLReport.script, ServerTableHTML.script])
        for bad: Unicode.Scalar in ["\u{1b}", "\u{07}", "\u{202e}"] { #expect(!page.unicodeScalars.contains(bad)) }
        #expect(page.contains("data-name-match=\"mismatch\""))
        let json = JSONReport.document(report)
        #expect(json.contains("\\u001b]0;pwned\\u0007<script>") || json.contains("\\u001B]0;pwned\\u0007<script>"))
    }

    /// An empty Certificate message is "no-certificate" whether or not the stream claimed a
    /// domain (a side that declined to present one is a fact of its own, not "no-name"); a
    /// certificate with no domain to compare with stays "no-name".
    @Test func emptyCertificateMessageWithoutAClaimedDomain() throws {
        let empty = Self.chain()
        #expect(empty.count == 0)
        for claimed in [nil, "", "a.example"] as [String?] {
            let report = Engine.certificateReport(empty, claimed: claimed)
            #expect(report.nameMatch == "no-certificate" && report.chainLength == 0, "claimed \(claimed ?? "nil")")
            #expect(report.expectedName == ((claimed ?? "").isEmpty ? nil : claimed))
        }
        let unnamed = Engine.certificateReport(Self.chain(try Self.make(cn: "a.example")), claimed: nil)
        #expect(unnamed.nameMatch == "no-name" && unnamed.expectedName == nil && unnamed.subject == "CN=a.example")
    }

    /// Every connection's parse state carries a TLSInfo with a chain per side, TLS or not: a
    /// chain costs a connection one pointer, not an inline parsed certificate (which made 100,000
    /// header connections under --max-memory 64 peak at 136 instead of 117 MiB).
    @Test func aChainCostsAConnectionOnePointer() {
        #expect(MemoryLayout<TLSCertificateChain?>.size == MemoryLayout<UnsafeRawPointer>.size)
    }

    /// Hostile bytes where a certificate should be: reported as not parsed, never a trap; an
    /// oversized one is not parsed at all; the chain's count stays the message's.
    @Test func garbageAndOversizedCertificates() throws {
        let good = try Self.make(cn: "a.example")
        var truncated = good
        truncated.removeLast(10)
        let c = TLSCertificateChain(direction: .clientToServer, frame: FrameRef(input: 0, number: 3, time: .zero),
                                    der: [[0x30, 0x03, 0x02, 0x01, 0x01][...], truncated[...], [UInt8](repeating: 0x30, count: 70_000)[...], good[...]], count: 12)
        #expect(c.count == 12 && c.certificates.count == 4)
        #expect(c.certificates[0] == nil && c.certificates[1] == nil && c.certificates[2] == nil && c.certificates[3]?.commonName == "a.example")
        #expect(c.problems.count == 3 && c.problems[2].contains("more than the 64 KiB"))
        #expect(c.nameMatch(for: "a.example") == .unknown, "the leaf was not parsed")
        let report = Engine.certificateReport(c, claimed: "a.example")
        #expect(report.subject == nil && report.nameMatch == "unknown" && report.chain.count == 3)
    }
}
