import Foundation
import S2Engine
import S2Model
import S2Report
import Testing

/// What a direction on the s2s port starts with decides how it is read: XML, TLS without STARTTLS,
/// or another protocol.
struct StreamStartTests {
    @Test func directTLSIsEncryptedTrafficNotBrokenXML() throws {
        let t = """
            C> \\x16\\x03\\x01\\x00\\x05hello
            S> \\x16\\x03\\x03\\x00\\x05world
            C> \\x17\\x03\\x03\\x00\\x04data
            """
        let r = try Engine.analyze(transcript: t)
        #expect(r.violations.isEmpty, "\(r.violations.map { "\($0.rule): \($0.message)" })")
        let enc = r.anomalies.filter { $0.kind == .encrypted }
        #expect(enc.count == 1)
        #expect(enc.first?.message.contains("direct TLS") == true)
    }

    @Test func anotherProtocolIsReportedOnceAndIgnored() throws {
        let t = """
            C> GET / HTTP/1.1\\r\\nHost: b.example\\r\\n\\r\\n
            S> HTTP/1.1 400 Bad Request\\r\\n\\r\\n<html>no</html>
            """
        let r = try Engine.analyze(transcript: t)
        #expect(r.violations.isEmpty)
        #expect(r.anomalies.filter { $0.kind == .notXMPP }.count == 2)
        #expect(r.statistics.connectionsWithoutXMPP == 1)
    }

    @Test func aMidstreamPickupInsideAnElementIsStillParsed() throws {
        // No SYN: the capture starts inside a stanza; the parser resynchronises at the next one.
        let r = try Engine.analyze(transcript: "C> ody>hello</body></message><presence from='a@a.example' to='b@b.example'/>")
        #expect(r.anomalies.contains { $0.kind == .xmlDesync } || !r.violations.isEmpty)
        #expect(!r.anomalies.contains { $0.kind == .notXMPP })
    }
}
