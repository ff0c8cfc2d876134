import Foundation
import S2Capture
import S2Model
import S2Synth
import S2TestSupport
import Testing

/// What a lossy sensor or a late capture makes of real traffic: every lab capture is cut (the
/// capture starts late, or ends early) and thinned (packets dropped at random, as kernel drops
/// do), and the report of each damaged copy must not charge anyone with a violation of medium or
/// above that the capture's ground truth does not list. Losing packets may hide exchanges and
/// expected violations; it must never make legitimate traffic look guilty.
struct DamagedCaptureTests {
    struct Frame { var bytes: [UInt8]; var time: Timestamp; var wireLength: Int }

    static func frames(of path: String) throws -> (linkType: Int32, frames: [Frame]) {
        let reader = try PcapFileReader(path: path, inputIndex: 0)
        var out: [Frame] = []
        _ = reader.read { p in
            out.append(Frame(bytes: Array(p.bytes), time: p.frame.time, wireLength: p.wireLength))
            return true
        }
        return (reader.linkType, out)
    }

    /// The damaged copies of a capture of `n` frames: which frames each keeps.
    static func damages(_ n: Int) -> [(name: String, keep: [Int])] {
        var out: [(String, [Int])] = [
            ("starts at a third", Array((n / 3)..<n)),
            ("starts half way", Array((n / 2)..<n)),
            ("ends half way", Array(0..<(n / 2))),
        ]
        for (seed, rate) in [(UInt64(1), 0.1), (2, 0.3), (3, 0.6)] {
            var rng = SplitMix(state: seed)
            out.append(("drops \(Int(rate * 100)) % (seed \(seed))", (0..<n).filter { _ in rng.nextUnit() >= rate }))
        }
        return out
    }

    @Test(arguments: LabGoldenTests.captures)
    func lossNeverMakesLegitimateTrafficGuilty(_ name: String) throws {
        let dir = repoRoot.appendingPathComponent("fixtures/lab")
        let truthURL = dir.appendingPathComponent("\(name).truth.json")
        let truth = try JSONSerialization.jsonObject(with: Data(contentsOf: truthURL)) as! [String: Any]
        // a rotated set (tcpdump -G) is one session: its files' frames, one after the other
        let files = (truth["captures"] as? [String]) ?? [truth["capture"] as? String ?? "\(name).pcap"]
        var linkType: Int32 = 0
        var all: [Frame] = []
        for f in files {
            let (lt, frames) = try Self.frames(of: dir.appendingPathComponent(f).path)
            linkType = lt
            all += frames
        }
        #expect(all.count > 4, "\(name): \(all.count) frames")
        for damage in Self.damages(all.count) {
            var w = PcapWriter(linkType: UInt32(linkType))
            for i in damage.keep { w.add(all[i].bytes, time: all[i].time, wireLength: all[i].wireLength) }
            let copy = temporaryFile(w.bytes)
            let reportPath = NSTemporaryDirectory() + "s2scope-damaged-\(UUID().uuidString).json"
            defer { try? FileManager.default.removeItem(atPath: copy); try? FileManager.default.removeItem(atPath: reportPath) }
            let r = try runS2Scope(["analyze", "--format", "json", "-o", reportPath, copy])
            #expect(r.status == 0 || r.status == 1, "\(name), \(damage.name): \(r.stderr)")
            let check = try runProcess("/usr/bin/env", ["python3", repoRoot.appendingPathComponent("scripts/lab/check-truth.py").path,
                                                        "--damaged", copy, truthURL.path, reportPath])
            #expect(check.status == 0, "\(name), \(damage.name) (\(damage.keep.count) of \(all.count) frames):\n\(check.stdout)\(check.stderr)")
        }
    }
}
