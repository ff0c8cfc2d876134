#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import S2Capture
import S2Engine
import S2Model
import S2Report

/// Target `pipeline`: the fuzz input is a capture file. It is written to a file in /dev/shm
/// (libpcap reads files), analysed by `Engine` exactly as `s2scope analyze` does, and rendered
/// as the JSON document, JSON Lines and the text report. Checks: the JSON is well-formed, the
/// text report carries no raw control byte (ESC…), every input is summarised.
public enum PipelineFuzz {
    nonisolated(unsafe) static var path: String = {
        let dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
        return "\(dir)/s2scope-fuzz-\(getpid()).pcap"
    }()

    public static func run(_ data: UnsafeRawBufferPointer) {
        guard let f = fopen(path, "wb") else { return }
        if !data.isEmpty { _ = fwrite(data.baseAddress!, 1, data.count, f) }
        fclose(f)
        defer { unlink(path) }
        let readers: [PcapFileReader]
        do {
            readers = try Engine.open(paths: [path], filter: nil)
        } catch {
            invariant(!"\(error)".isEmpty, "open failed without a message")
            return
        }
        var configuration = EngineConfiguration()
        configuration.reassembly.maxConnections = 64
        configuration.maxAnomaliesKept = 200
        // pcapng Decryption Secrets Blocks: read from the file itself, as `analyze` does.
        _ = configuration.loadEmbeddedSecrets(paths: [path])
        let engine = Engine(configuration: configuration)
        for r in readers { engine.read(r) }
        let report = engine.finish()
        invariant(report.inputs.count == 1, "\(report.inputs.count) input summaries for one input")
        let json = JSONReport.document(report)
        invariant(JSONCheck.isValid(json), "JSON document is not well-formed:\n\(json.prefix(4000))")
        for line in JSONReport.lines(report).split(separator: "\n") {
            invariant(JSONCheck.isValid(String(line)), "JSON line is not well-formed: \(line.prefix(2000))")
        }
        let text = TextReport(color: false, verbose: true).render(report)
        invariant(!containsRawControl(text), "text report contains a raw control character")
    }
}

/// A strict, small JSON well-formedness checker (RFC 8259), for the reports.
enum JSONCheck {
    static func isValid(_ s: String) -> Bool {
        var u = Array(s.utf8)
        u.append(0)
        var i = 0
        func ws() { while u[i] == 0x20 || u[i] == 0x0a || u[i] == 0x0d || u[i] == 0x09 { i += 1 } }
        func lit(_ w: String) -> Bool {
            for b in w.utf8 { guard u[i] == b else { return false }; i += 1 }
            return true
        }
        func string() -> Bool {
            guard u[i] == 0x22 else { return false }
            i += 1
            while true {
                let b = u[i]
                if b == 0x22 { i += 1; return true }
                if b < 0x20 { return false }  // raw control characters (and the terminator) are invalid
                if b == 0x5c {
                    i += 1
                    switch u[i] {
                    case 0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74: i += 1
                    case 0x75:
                        i += 1
                        for _ in 0..<4 {
                            let h = u[i]
                            guard (h >= 0x30 && h <= 0x39) || (h >= 0x41 && h <= 0x46) || (h >= 0x61 && h <= 0x66) else { return false }
                            i += 1
                        }
                    default: return false
                    }
                } else {
                    i += 1
                }
            }
        }
        func number() -> Bool {
            let start = i
            if u[i] == 0x2d { i += 1 }
            guard u[i] >= 0x30 && u[i] <= 0x39 else { return false }
            if u[i] == 0x30 { i += 1 } else { while u[i] >= 0x30 && u[i] <= 0x39 { i += 1 } }
            if u[i] == 0x2e {
                i += 1
                guard u[i] >= 0x30 && u[i] <= 0x39 else { return false }
                while u[i] >= 0x30 && u[i] <= 0x39 { i += 1 }
            }
            if u[i] == 0x65 || u[i] == 0x45 {
                i += 1
                if u[i] == 0x2b || u[i] == 0x2d { i += 1 }
                guard u[i] >= 0x30 && u[i] <= 0x39 else { return false }
                while u[i] >= 0x30 && u[i] <= 0x39 { i += 1 }
            }
            return i > start
        }
        func value(_ depth: Int) -> Bool {
            guard depth < 64 else { return false }
            ws()
            switch u[i] {
            case 0x7b:
                i += 1; ws()
                if u[i] == 0x7d { i += 1; return true }
                while true {
                    ws()
                    guard string() else { return false }
                    ws()
                    guard u[i] == 0x3a else { return false }
                    i += 1
                    guard value(depth + 1) else { return false }
                    ws()
                    if u[i] == 0x2c { i += 1; continue }
                    if u[i] == 0x7d { i += 1; return true }
                    return false
                }
            case 0x5b:
                i += 1; ws()
                if u[i] == 0x5d { i += 1; return true }
                while true {
                    guard value(depth + 1) else { return false }
                    ws()
                    if u[i] == 0x2c { i += 1; continue }
                    if u[i] == 0x5d { i += 1; return true }
                    return false
                }
            case 0x22: return string()
            case 0x74: return lit("true")
            case 0x66: return lit("false")
            case 0x6e: return lit("null")
            default: return number()
            }
        }
        guard value(0) else { return false }
        ws()
        return i == u.count - 1
    }
}
