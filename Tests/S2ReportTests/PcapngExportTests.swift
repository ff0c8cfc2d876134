import S2TestSupport
import Foundation
import Testing

/// `--write-pcapng`: tshark reads every finding of the report back from the export, as
/// `frame.comment` on the frame the finding points at, and nothing else; capinfos and tshark
/// read the file without a warning.
struct PcapngExportTests {
    typealias JSON = [String: Any]

    /// tshark's view of a capture: per frame, the fields asked for (each a list).
    static func tshark(_ path: String, _ fields: [String]) throws -> [[String: [String]]] {
        let r = try runTool("/usr/bin/tshark", ["-r", path, "-T", "json"] + fields.flatMap { ["-e", $0] })
        #expect(r.status == 0, "tshark: \(r.stderr)")
        #expect(warnings(r.stderr).isEmpty, "tshark warned: \(r.stderr)")
        let packets = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [JSON])
        return packets.map { ($0["_source"] as? JSON)?["layers"] as? [String: [String]] ?? [:] }
    }

    static func warnings(_ stderr: String) -> [Substring] {
        stderr.split(separator: "\n").filter { !$0.isEmpty && !$0.hasPrefix("Running as user \"root\"") }
    }

    /// What identifies a frame across files: time, lengths and the TCP/IP fields that differ
    /// between segments (a retransmission with the same bytes has another time).
    static let identity = ["frame.time_epoch", "frame.len", "frame.cap_len", "ip.id", "ipv6.plen", "tcp.seq_raw", "tcp.ack_raw", "tcp.len"]

    static func key(_ layers: [String: [String]]) -> String {
        identity.map { (layers[$0] ?? []).joined(separator: "/") }.joined(separator: "|")
    }

    /// Runs `analyze --format json --write-pcapng` on `inputs` and checks the export against the
    /// report; returns (frames written, comments read back).
    @discardableResult
    func exportAndCheck(_ inputs: [String], extra: [String] = []) throws -> (Int, Int) {
        let dir = try scratchDirectory("pcapng")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.pcapng").path
        let r = try runS2Scope(["analyze", "--format", "json", "--write-pcapng", out] + extra + inputs)
        #expect(r.status == 0 || r.status == 1, "\(inputs): \(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? JSON)

        // Which original frame is each exported frame: matched on its identity in its input.
        var originals: [String: (input: Int, number: Int)] = [:]
        var ambiguous = Set<String>()
        for (i, path) in inputs.enumerated() {
            for l in try Self.tshark(path, ["frame.number"] + Self.identity) {
                let k = "\(i)#" + Self.key(l)
                if originals[k] != nil { ambiguous.insert(k) }
                originals[k] = (i, Int(l["frame.number"]?.first ?? "") ?? 0)
            }
        }
        let exported = try Self.tshark(out, ["frame.number", "frame.interface_id", "frame.comment"] + Self.identity)
        var interfaceInput: [String: Int] = [:]  // interface id → input (by the description tshark shows)
        let capinfos = try runTool("/usr/bin/capinfos", ["-I", out])
        #expect(capinfos.status == 0 && Self.warnings(capinfos.stderr).isEmpty, "capinfos: \(capinfos.stderr)")
        for block in capinfos.stdout.components(separatedBy: "Interface #").dropFirst() {
            let id = String(block.prefix(while: { $0 != " " }))
            if let d = block.components(separatedBy: "Description = ").dropFirst().first?.prefix(while: { $0 != "\n" }),
               let i = inputs.firstIndex(of: String(d)) { interfaceInput[id] = i }
        }

        var got: [String: [String]] = [:]  // "input:frame" → comments read back
        var written = Set<String>()
        for l in exported {
            let interface = l["frame.interface_id"]?.first ?? "0"
            let input = try #require(interfaceInput[interface], "interface \(interface) names no input")
            let k = "\(input)#" + Self.key(l)
            #expect(!ambiguous.contains(k), "frame identity \(k) is not unique in the input")
            let original = try #require(originals[k], "exported frame \(l["frame.number"] ?? []) is no frame of input \(input)")
            let name = "\(original.input):\(original.number)"
            written.insert(name)
            if let c = l["frame.comment"] { got[name, default: []] += c }
        }

        var expected: [String: [String]] = [:]
        for v in doc["violations"] as! [JSON] {
            let name = "\(v["input"] as! Int):\(v["packet"] as! Int)"
            #expect(written.contains(name), "the frame of violation \(v["rule"]!) (\(name)) was not written")
            expected[name, default: []].append("\(v["rule"]!) \(v["severity"]!): \(v["message"]!)")
        }
        for a in doc["anomalies"] as! [JSON] {
            guard let n = a["packet"] as? Int else { continue }
            let name = "\(a["input"] as! Int):\(n)"
            if written.contains(name) { expected[name, default: []].append("anomaly \(a["kind"]!): \(a["message"]!)") }
        }
        #expect(got.mapValues { $0.sorted() } == expected.mapValues { $0.sorted() }, "\(inputs)")
        return (exported.count, got.values.reduce(0) { $0 + $1.count })
    }

    static let labCaptures: [String] = {
        let lab = repoRoot.appendingPathComponent("fixtures/lab")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: lab.path)) ?? []
        return names.filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }.sorted().map { lab.appendingPathComponent($0).path }
    }()

    @Test(arguments: labCaptures)
    func tsharkReadsEveryFindingBack(_ capture: String) throws {
        let (frames, comments) = try exportAndCheck([capture])
        print("pcapng export \(URL(fileURLWithPath: capture).lastPathComponent): \(frames) frames, \(comments) comments")
    }

    /// Several inputs, and inputs of different link types (a pcap cannot hold both): one
    /// interface per input, comments on the right input's frames.
    @Test func severalInputsOfDifferentLinkTypes() throws {
        let lab = repoRoot.appendingPathComponent("fixtures/lab")
        let rotated = (1...3).map { lab.appendingPathComponent("rotated-\($0).pcap").path }
        let (frames, comments) = try exportAndCheck(rotated)
        #expect(frames > 0 && comments > 0)
        // The connections of a rotation span its files: the pcap export takes their frames from
        // every file too (frame ranges are per input), the same frames as the pcapng.
        let rotatedPcap = NSTemporaryDirectory() + "s2scope-rotated-\(UUID().uuidString).pcap"
        defer { try? FileManager.default.removeItem(atPath: rotatedPcap) }
        let r = try runS2Scope(["analyze", "-q", "-o", "/dev/null", "--write-pcap", rotatedPcap] + rotated)
        #expect(r.status == 0 || r.status == 1, "\(r.stderr)")
        #expect(try Self.tshark(rotatedPcap, ["frame.number"]).count == frames)
        let whole = try rotated.reduce(0) { $0 + (try Self.tshark($1, ["frame.number"]).count) }
        #expect(frames > whole / 2, "\(frames) of \(whole) frames: the later files' frames are missing")
        let mixed = [lab.appendingPathComponent("wrong-secret.pcap").path, lab.appendingPathComponent("prosody-prosody-sll.pcap").path]
        let (f2, c2) = try exportAndCheck(mixed)
        #expect(f2 > 0 && c2 > 0)
        let pcap = try runS2Scope(["analyze", "-q", "-o", "/dev/null", "--write-pcap", NSTemporaryDirectory() + "s2scope-mixed-\(UUID().uuidString).pcap"] + mixed)
        #expect(pcap.status == 2 && pcap.stderr.contains("--write-pcapng"), "a pcap refuses two link types and points at pcapng: \(pcap.stderr)")
    }

    /// `--select` narrows the pcapng export as it narrows the pcap one; a violation outside the
    /// selection leaves no comment.
    @Test func selectNarrowsTheExport() throws {
        let capture = repoRoot.appendingPathComponent("fixtures/lab/multi-server.pcap").path
        let dir = try scratchDirectory("pcapng-select")
        defer { try? FileManager.default.removeItem(at: dir) }
        let all = dir.appendingPathComponent("all.pcapng").path, some = dir.appendingPathComponent("some.pcapng").path
        let pcap = dir.appendingPathComponent("some.pcap").path
        let r1 = try runS2Scope(["analyze", "-q", "-o", "/dev/null", "--write-pcapng", all, capture])
        let r2 = try runS2Scope(["analyze", "-q", "-o", "/dev/null", "--write-pcapng", some, "--write-pcap", pcap, "--select", "rule=DB-CORR-9", capture])
        #expect(r1.status == 1 && r2.status == 1, "\(r1.stderr) \(r2.stderr)")
        let a = try Self.tshark(all, ["frame.comment"]), s = try Self.tshark(some, ["frame.comment"])
        let p = try Self.tshark(pcap, ["frame.number"])
        #expect(s.count < a.count && s.count == p.count, "the pcap and the pcapng of one selection hold the same frames")
        let comments = s.flatMap { $0["frame.comment"] ?? [] }
        #expect(comments.contains { $0.hasPrefix("DB-CORR-9 ") })
        #expect(!comments.contains { $0.hasPrefix("STANZA-ADDR-4 ") }, "a finding of a connection not selected")
        #expect(a.flatMap { $0["frame.comment"] ?? [] }.count > comments.count)
    }

    @Test func badUsesExitTwo() throws {
        let capture = repoRoot.appendingPathComponent("fixtures/lab/wrong-secret.pcap").path
        let stdin = try runS2Scope(["analyze", "--write-pcapng", "/tmp/x.pcapng", "-"])
        #expect(stdin.status == 2 && stdin.stderr.contains("standard input"))
        let same = try runS2Scope(["analyze", "--write-pcapng", "/tmp/x.pcap", "--write-pcap", "/tmp/x.pcap", capture])
        #expect(same.status == 2 && same.stderr.contains("same file"))
        let unwritable = try runS2Scope(["analyze", "-q", "-o", "/dev/null", "--write-pcapng", "/nonexistent-dir/x.pcapng", capture])
        #expect(unwritable.status == 2 && unwritable.stderr.contains("/nonexistent-dir/x.pcapng"))
    }
}
