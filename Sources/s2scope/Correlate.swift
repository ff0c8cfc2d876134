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
        var parsed: [FactFile] = []
        for path in files {
            guard let text = readWhole(path) else { throw FatalError(message: "\(path): cannot read (\(String(cString: strerror(errno))))") }
            do {
                parsed += try FactFile.parse(path: path, text: text)
            } catch let e as FactError {
                throw FatalError(message: e.description)
            }
        }
        var options = Correlation.Options()
        options.rules = configuration.rules
        options.hosts = configuration.hosts
        options.maxSkew = maxSkew
        options.maxAnomaliesKept = configuration.maxAnomaliesKept
        let report: AnalysisReport
        do {
            report = try Correlation(files: parsed, options: options).run()
        } catch let e as FactError {
            throw FatalError(message: e.description)
        }
        switch format {
        case .json: try stream(to: output) { f in JSONReport.write(report) { fputs($0, f) } }
        case .jsonl: try stream(to: output) { f in JSONReport.writeLines(report) { fputs($0, f) } }
        case .text:
            let useColor = color ?? (output == nil && isatty(1) == 1 && getenv("NO_COLOR") == nil)
            try write(TextReport(color: useColor, verbose: verbose).render(report), to: output)
        }
        if let html { try write(HTMLReport().render(report), to: html == "-" ? nil : html) }
        if report.count(atLeast: analysis.failOn.severity) > 0 { throw ExitCode(1) }
    }
}

/// A whole file (or standard input) as text; nil if it cannot be read.
func readWhole(_ path: String) -> String? {
    let f: UnsafeMutablePointer<FILE>
    if path == "-" {
        f = stdin
    } else {
        guard let o = fopen(path, "r") else { return nil }
        f = o
    }
    defer { if path != "-" { fclose(f) } }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = fread(&chunk, 1, chunk.count, f)
        if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
        if n < chunk.count { break }
    }
    if ferror(f) != 0 { return nil }
    return String(decoding: bytes, as: UTF8.self)
}
