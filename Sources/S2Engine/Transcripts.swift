import S2Model
import S2Report
import S2Synth

extension Engine {
    /// Analyses a transcript (see `Transcript`) as if it were a capture.
    /// Lines `#!host DOMAIN=ADDRESS` and `#!secret DOMAIN=SECRET` add analysis settings.
    public static func analyze(transcript text: String, configuration: EngineConfiguration = .init()) throws -> AnalysisReport {
        var configuration = configuration
        for line in text.split(separator: "\n") {
            let l = line.drop { $0 == " " }
            let parts = l.dropFirst(2).split(separator: " ", maxSplits: 1)
            guard l.hasPrefix("#!"), parts.count == 2 else { continue }
            let kv = parts[1].split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { continue }
            switch parts[0] {
            case "host": configuration.hosts[kv[1], default: []].insert(kv[0])
            case "secret": configuration.rules.secrets[kv[0]] = kv[1]
            default: break
            }
        }
        let t = try Transcript(text)
        let engine = Engine(configuration: configuration)
        for (i, f) in t.frames.enumerated() {
            f.bytes.withUnsafeBytes { b in
                engine.process(b, linkType: 1, frame: FrameRef(input: 0, number: i + 1, time: f.time), wireLength: f.bytes.count)
            }
        }
        engine.report.inputs.append(InputSummary(path: "<transcript>", format: "pcap", linkType: "EN10MB",
                                                 packets: t.frames.count, bytes: 0, truncated: false))
        return engine.finish()
    }
}
