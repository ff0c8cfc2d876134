import ArgumentParser
import S2Facts
import S2Report

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

struct Correlate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Join the facts of many sensors ('analyze --facts') into one report.",
        discussion: """
            Each fact file is one sensor's shard (docs/FACTS.md). A TCP connection two sensors saw is \
            counted once (same endpoints and first sequence numbers, or overlapping lifetimes when a \
            sensor missed the SYN); the sensors' clocks are aligned on the connections both saw from \
            the SYN on; the cross-connection rules then run once over every connection's facts in time \
            order, and the findings each shard judged alone are merged in. Evidence names the input as \
            sensor/file and the frame number in that file. '-' reads standard input.

            Example:
              s2scope analyze --facts a.facts --sensor node-a a.pcap
              s2scope analyze --facts b.facts --sensor node-b b.pcap
              s2scope correlate --format json a.facts b.facts
            """)

    @Argument(help: ArgumentHelp("Fact files written by 'analyze --facts' ('-': standard input).", valueName: "facts"))
    var files: [String]

    @OptionGroup var analysis: AnalysisOptions

    @Option(name: .long, help: ArgumentHelp("Seconds two sensors' clocks may disagree.", valueName: "seconds"))
    var maxSkew: Double = 5

    @Option(name: .long, help: "Report format: text, json, jsonl.")
    var format: OutputFormat = .text

    @Option(name: [.short, .long], help: ArgumentHelp("Write the report to this file instead of standard output.", valueName: "file"))
    var output: String?

    @Flag(inversion: .prefixedNo, help: "Colour the text report (default: only when writing to a terminal).")
    var color: Bool?

    @Flag(name: .shortAndLong, help: "List every anomaly and connection in the text report.")
    var verbose = false

    @Option(name: .long, help: ArgumentHelp("Also write the report as one HTML page.", valueName: "file"))
    var html: String?

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one facts file") }
        if files.filter({ $0 == "-" }).count > 1 { throw ValidationError("standard input ('-') can be read only once") }
        if !(maxSkew >= 0 && maxSkew <= 86_400) { throw ValidationError("--max-skew takes 0 to 86400 seconds") }
    }

    func run() throws {
        let configuration = try analysis.makeConfiguration()
        // Facts are read twice (connections first, then the merge): standard input is kept in a
        // temporary file meanwhile.
        var paths = files
        var spooled: String?
        defer { if let spooled { unlink(spooled) } }
        if let i = files.firstIndex(of: "-") {
            let tmp = spoolStandardInput()
            guard let tmp else { throw FatalError(message: "cannot keep standard input in a temporary file (\(String(cString: strerror(errno))))") }
            spooled = tmp
            paths[i] = tmp
        }
        for path in paths where access(path, R_OK) != 0 {
            throw FatalError(message: "\(path): cannot read (\(String(cString: strerror(errno))))")
        }
        var options = Correlation.Options()
        options.rules = configuration.rules
        options.hosts = configuration.hosts
        options.maxSkew = maxSkew
        options.maxAnomaliesKept = configuration.maxAnomaliesKept
        let report: AnalysisReport
        do {
            let correlation = Correlation(paths: paths, options: options)
            report = try correlation.run()
        } catch let e as FactError {
            throw FatalError(message: e.description)
        }
        try writeReport(report, format: format, to: output, color: color, verbose: verbose)
        if let html { try write(HTMLReport().render(report), to: html == "-" ? nil : html) }
        if report.count(atLeast: analysis.failOn.severity) > 0 { throw ExitCode(1) }
    }
}

/// Copies standard input into a new temporary file; its path, or nil.
func spoolStandardInput() -> String? {
    let dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    var template = Array("\(dir)/s2scope-facts-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else { return nil }
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = fread(&chunk, 1, chunk.count, stdin)
        if n > 0 {
            var done = 0
            while done < n {
                let w = chunk[done..<n].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if w <= 0 { close(fd); unlink(path); return nil }
                done += w
            }
        }
        if n < chunk.count { break }
    }
    let failed = ferror(stdin) != 0
    close(fd)
    if failed { unlink(path); return nil }
    return path
}
