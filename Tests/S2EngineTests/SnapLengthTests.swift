import S2TestSupport
import Foundation
import Testing

/// Captures cut by the snap length: one anomaly per input names the cause and the fix, with the
/// counts tshark sees, instead of an anomaly per cut frame, per hole and per resynchronisation;
/// a real loss among the cut frames is still a gap.
struct SnapLengthTests {
    typealias JSON = [String: Any]

    static func analyze(_ path: String) throws -> JSON {
        let r = try runS2Scope(["analyze", "--quiet", "--format", "json", path])
        #expect(r.status == 0 || r.status == 1, "\(r.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? JSON)
    }

    /// Frames tshark sees cut in their TCP payload, and the payload bytes they lack (Ethernet).
    static func cutByTshark(_ path: String) throws -> (frames: Int, bytes: Int, total: Int) {
        let r = try runProcess("/usr/bin/tshark", ["-r", path, "-T", "fields", "-E", "separator=,", "-e", "frame.len", "-e", "frame.cap_len",
                                                   "-e", "ip.hdr_len", "-e", "tcp.hdr_len", "-e", "tcp.len"])
        #expect(r.status == 0, "\(r.stderr)")
        var frames = 0, bytes = 0, total = 0
        for line in r.stdout.split(separator: "\n") {
            total += 1
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) ?? 0 }
            guard f.count == 5, f[1] < f[0], f[4] > 0 else { continue }
            let captured = max(0, f[1] - 14 - f[2] - f[3])
            if captured < f[4] {
                frames += 1
                bytes += f[4] - captured
            }
        }
        return (frames, bytes, total)
    }

    static let captures = ["fixtures/snaplen/prosody-prosody-s96.pcap", "fixtures/snaplen/wrong-secret-s200.pcap", "fixtures/decode/snaplen-cut.pcap"]

    @Test(arguments: zip(captures, [96, 200, 128]))
    func oneAnomalyNamesCauseFixAndCost(_ capture: String, _ snap: Int) throws {
        let path = repoRoot.appendingPathComponent(capture).path
        let doc = try Self.analyze(path)
        let expected = try Self.cutByTshark(path)
        #expect(expected.frames > 0)
        let anomalies = try #require(doc["anomalies"] as? [JSON])
        #expect(anomalies.count == 1, "\(anomalies.map { $0["kind"]! })")
        let summary = try #require(doc["summary"] as? JSON)
        #expect(summary["anomalies_by_kind"] as? [String: Int] == ["truncated-packet": 1])
        let a = try #require(anomalies.first)
        #expect(a["kind"] as? String == "truncated-packet")
        #expect(a["bytes"] as? Int == expected.bytes)
        let m = try #require(a["message"] as? String)
        #expect(m.contains("snap length (\(snap) bytes) cut \(expected.frames) of \(expected.total) frames short: \(expected.bytes) bytes of TCP payload"), "\(m)")
        #expect(m.contains("tcpdump -s 0"))
        #expect(m.contains("the \(expected.frames) holes this left in the streams (\(expected.bytes) bytes)"), "every hole is a cut one: \(m)")
        // The first cut frame is where it points.
        #expect(a["packet"] as? Int == 4)
        // The text report shows it first, in one line, with nothing else under Anomalies.
        let text = try runS2Scope(["analyze", "--no-color", path])
        let section = text.stdout.components(separatedBy: "Anomalies (capture and transport, not protocol violations)\n").last ?? ""
        #expect(section.split(separator: "\n").filter { $0.hasPrefix("  ") }.count == 1, "\(section)")
        #expect(section.hasPrefix("  truncated-packet"))
    }

    /// A frame really lost among cut ones: its hole is a gap (listed), the cut ones are not.
    @Test func aRealLossStaysAGap() throws {
        let source = repoRoot.appendingPathComponent("fixtures/snaplen/wrong-secret-s200.pcap").path
        let r = try runProcess("/usr/bin/tshark", ["-r", source, "-T", "fields", "-E", "separator=,", "-e", "frame.number", "-e", "frame.len",
                                                   "-e", "frame.cap_len", "-e", "tcp.len", "-Y", "tcp.len > 0 && frame.len == frame.cap_len"])
        // A whole (uncut) data frame in the middle of the capture.
        let candidates = r.stdout.split(separator: "\n").compactMap { Int($0.split(separator: ",").first ?? "") }.filter { $0 > 10 }
        let victim = try #require(candidates.first)
        let lossy = NSTemporaryDirectory() + "s2scope-snap-loss-\(UUID().uuidString).pcap"
        defer { try? FileManager.default.removeItem(atPath: lossy) }
        let e = try runProcess("/usr/bin/editcap", ["-F", "pcap", source, lossy, "\(victim)"])
        #expect(e.status == 0, "\(e.stderr)")
        let doc = try Self.analyze(lossy)
        let kinds = (doc["anomalies"] as! [JSON]).map { $0["kind"] as! String }
        #expect(kinds.first == "truncated-packet" && kinds.filter { $0 == "truncated-packet" }.count == 1, "\(kinds)")
        #expect(kinds.contains("gap"), "the lost frame's hole is reported: \(kinds)")
        let gaps = (doc["anomalies"] as! [JSON]).filter { $0["kind"] as? String == "gap" }
        #expect(gaps.count <= 2, "only the real loss: \(gaps.map { $0["message"]! })")
    }
}
