import ArgumentParser
import S2Capture
import S2Dialback
import S2Engine
import S2Facts
import S2Model
import S2Report
import S2Rules

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json, jsonl
}

enum ProfileOption: String, ExpressibleByArgument, CaseIterable {
    case auto, rfc3920, xep0220
}

/// `--fail-on` values (String-backed so that help prints names, not Severity's raw integers).
enum FailOn: String, ExpressibleByArgument, CaseIterable {
    case info, low, medium, high, critical
    var severity: Severity { Severity(name: rawValue)! }
}

/// Options shared by everything that analyses traffic.
struct AnalysisOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("TCP port that carries s2s traffic; repeat for several.", valueName: "port"))
    var port: [UInt16] = []

    @Option(name: .long, help: ArgumentHelp("BPF filter applied to every frame (frames it drops still count for frame numbers).", valueName: "expr"))
    var filter: String?

    @Option(name: .long, help: "Severity at or above which the exit status is 1.")
    var failOn: FailOn = .high

    @Option(name: .long, help: ArgumentHelp("Do not check this rule (an ID from 's2scope rules'); repeatable.", valueName: "rule"))
    var disable: [String] = []

    @Option(name: .long, help: "Rule profile where RFC 3920 and XEP-0220 disagree: auto (per peer, from its dialback features), rfc3920, xep0220.")
    var profile: ProfileOption = .auto

    @Option(name: .long, help: ArgumentHelp("Declare that ADDRESS hosts DOMAIN (DOMAIN=ADDRESS); repeatable. Enables the hosted-domain checks.", valueName: "domain=address"))
    var host: [String] = []

    @Option(name: .long, help: ArgumentHelp("File with one 'DOMAIN ADDRESS' (or DOMAIN=ADDRESS) per line; # starts a comment.", valueName: "file"))
    var hosts: String?

    @Option(name: .long, help: ArgumentHelp("Dialback secret of an authoritative domain (DOMAIN=SECRET), to check keys with XEP-0185 (DB-AUTH-3); repeatable.", valueName: "domain=secret"))
    var dialbackSecret: [String] = []

    @Option(name: .long, help: ArgumentHelp("NSS key log (SSLKEYLOGFILE) with the TLS secrets of the captured sessions: traffic after STARTTLS is decrypted (TLS 1.3; TLS 1.2 AES-GCM/ChaCha20-Poly1305) and analysed like plaintext; repeatable (the secrets merge, also with those a pcapng file carries in decryption secrets blocks). 'live' follows the file as the servers append to it.", valueName: "file"))
    var keylog: [String] = []

    @Option(name: .long, help: ArgumentHelp("live: seconds a TLS session whose secrets are not in the key log yet holds its records for them before they count as not decrypted.", valueName: "seconds"))
    var keylogWait: Double = 5

    @Option(name: .long, help: "Seconds a party has to react to a violation (stream error, close).")
    var reactTimeout: Double = 10

    @Option(name: .long, help: "Seconds a dialback round trip (verify, answer) may take.")
    var dialbackTimeout: Double = 60

    @Option(name: .long, help: "Seconds to tear TCP down after both streams closed.")
    var closeTimeout: Double = 30

    @Option(name: .long, help: "Maximum TCP connections tracked at once (the least recently active are closed early beyond it).")
    var maxConnections: Int = 100_000

    @Option(name: .long, help: "Seconds without packets (capture time) after which a connection is closed as 'timeout'.")
    var idleTimeout: Double = 600

    @Option(name: .long, help: ArgumentHelp("Memory budget of the analysis state in MiB (connections, their parsers and buffers, pending requests): beyond it the least recently active connections are closed early, and what they awaited is not judged. 0: no budget. See docs/LIMITS.md.", valueName: "MiB"))
    var maxMemory: Int = EngineConfiguration.defaultMaxMemoryMiB

    @Option(name: .long, help: ArgumentHelp("Findings the report lists one by one (analyze, correlate); later ones are counted by connection, rule and severity (summary.suppressed_violations) and still decide the exit status. 0: no bound.", valueName: "n"))
    var maxFindings: Int = 100_000

    func validate() throws {
        for h in host where !h.contains("=") { throw ValidationError("--host expects DOMAIN=ADDRESS, got '\(h)'") }
        for s in dialbackSecret where !s.contains("=") { throw ValidationError("--dialback-secret expects DOMAIN=SECRET") }
        for r in disable where RuleCatalog.description(of: r) == nil {
            throw ValidationError("--disable: unknown rule '\(r)' (see 's2scope rules')")
        }
        if reactTimeout <= 0 || dialbackTimeout <= 0 || closeTimeout <= 0 { throw ValidationError("timeouts must be positive") }
        if maxConnections < 1 { throw ValidationError("--max-connections must be at least 1") }
        if maxFindings < 0 { throw ValidationError("--max-findings must be 0 (no bound) or more") }
        if maxMemory != 0 && maxMemory < 16 { throw ValidationError("--max-memory must be at least 16 (MiB), or 0 for no budget") }
        if keylog.contains("") { throw ValidationError("--keylog needs a file name") }
        if !(keylogWait > 0 && keylogWait <= 300) { throw ValidationError("--keylog-wait takes 0 < seconds <= 300") }
    }

    /// The run's configuration; `loadKeyLogs`: read the `--keylog` files now (offline; live
    /// follows them instead).
    func makeConfiguration(loadKeyLogs: Bool = true) throws -> EngineConfiguration {
        var c = EngineConfiguration()
        if !port.isEmpty { c.ports = Set(port) }
        c.filter = filter
        c.rules.disabled = Set(disable)
        c.rules.profile = profile == .auto ? nil : (profile == .rfc3920 ? .rfc3920 : .xep0220)
        c.rules.timers.react = reactTimeout
        c.rules.timers.dialback = dialbackTimeout
        c.rules.timers.close = closeTimeout
        c.rules.maxListedViolations = maxFindings == 0 ? nil : maxFindings
        c.reassembly.maxConnections = maxConnections
        c.reassembly.idleTimeoutSeconds = idleTimeout
        c.maxMemory = maxMemory == 0 ? nil : maxMemory << 20
        c.tlsHold.seconds = keylogWait
        if loadKeyLogs {
            for path in keylog {
                if let problem = c.loadKeyLog(path: path) { throw FatalError(message: problem) }
            }
        }
        var pairs = host
        if let hosts {
            guard let f = fopen(hosts, "r") else { throw FatalError(message: "\(hosts): cannot read the hosts file") }
            defer { fclose(f) }
            var line: UnsafeMutablePointer<CChar>? = nil
            var cap = 0
            while getline(&line, &cap, f) > 0, let l = line {
                let text = String(cString: l).split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                let parts = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "=" || $0 == "\n" })
                if parts.count >= 2 { pairs.append("\(parts[0])=\(parts[1])") }
            }
            free(line)
        }
        for p in pairs {
            let kv = p.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { continue }
            c.hosts[String(kv[1]), default: []].insert(String(kv[0]))
        }
        for s in dialbackSecret {
            let kv = s.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { c.rules.secrets[String(kv[0])] = String(kv[1]) }
        }
        return c
    }
}

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Analyse pcap/pcapng captures (several files form one report; '-' reads standard input).",
        discussion: """
            Frames are numbered per file from 1, as Wireshark numbers them. A capture cut short is analysed up \
            to the cut and reported as truncated. Bytes after STARTTLS are encrypted: rules there are 'not \
            checked', never 'passed'.

            Memory does not grow with the length of the capture: closed connections, settled dialback \
            exchanges and the indexes the cross-connection rules read are kept in unnamed temporary files \
            in $TMPDIR (default /tmp), gone when s2scope exits. Where /tmp is held in memory (a tmpfs), \
            set TMPDIR to a directory on disk.
            """)

    @Argument(help: ArgumentHelp("Capture files (pcap or pcapng), directories of them (with --recursive), or '-' for standard input.", valueName: "file"))
    var files: [String]

    @Flag(name: [.short, .long], help: "Analyse the pcap/pcapng files in the directories given, and below, in the order of their first packet (files are recognised by their content, not their names; hidden directories and links to directories are not entered).")
    var recursive = false

    @OptionGroup var analysis: AnalysisOptions

    @Option(name: .long, help: "Report format: text (for people), json (one document, schema s2scope/1), jsonl (one event per line).")
    var format: OutputFormat = .text

    @Option(name: [.short, .long], help: ArgumentHelp("Write the report to this file instead of standard output.", valueName: "file"))
    var output: String?

    @Flag(inversion: .prefixedNo, help: "Colour the text report (default: only when writing to a terminal; NO_COLOR disables).")
    var color: Bool?

    @Flag(name: .shortAndLong, help: "List every anomaly and connection in the text report.")
    var verbose = false

    @Flag(name: .shortAndLong, help: "No progress indicator on standard error.")
    var quiet = false

    @Option(name: .long, help: ArgumentHelp("Also write the report as one self-contained HTML page (summary, filters, a sequence diagram per dialback exchange, violations, connections).", valueName: "file"))
    var html: String?

    @Option(name: .long, help: ArgumentHelp("Also write the shard's facts (docs/FACTS.md: connections, the events the correlator reads, the findings judged from one connection) as JSON lines, for 's2scope correlate'. '-': standard output (the report is then written only with -o).", valueName: "file"))
    var facts: String?

    @Option(name: .long, help: ArgumentHelp("Sensor name written into the facts (default: the host name).", valueName: "name"))
    var sensor: String?

    @Option(name: .long, help: ArgumentHelp("Threads to use: with 2 or more, XML parsing runs on N-1 worker threads beside the one that reads, reassembles and judges in capture order (the report is the same as with 1). 0: one per CPU core.", valueName: "n"))
    var threads: Int = 1

    @Option(name: .long, help: ArgumentHelp("After the analysis, write the packets of every connection with a violation (or of those --select picks), with the connections of their dialback exchanges, to a new pcap in the input's link type. Reads the inputs again: not with standard input.", valueName: "file"))
    var writePcap: String?

    @Option(name: .long, help: ArgumentHelp("Like --write-pcap, as pcapng with every finding attached to its frame as a packet comment ('RULE-ID severity: message'; anomalies as 'anomaly KIND: message'): Wireshark and tshark show them as frame.comment. One interface per input, with its link type, snap length and timestamp resolution.", valueName: "file"))
    var writePcapng: String?

    @Option(name: .long, help: ArgumentHelp("Which connections --write-pcap and --write-pcapng write: rule=ID (those with a violation of rule ID) or domain=NAME (those whose stream headers or dialback exchanges name NAME); repeatable, the union is written.", valueName: "rule=ID|domain=NAME"))
    var select: [String] = []

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one capture file (or '-' for standard input)") }
        if files.filter({ $0 == "-" }).count > 1 { throw ValidationError("standard input ('-') can be read only once") }
        for (option, w) in [("--write-pcap", writePcap), ("--write-pcapng", writePcapng)] {
            guard let w else { continue }
            if files.contains("-") {
                throw ValidationError("\(option) reads the inputs a second time, so standard input ('-') is not supported with it; save the capture to a file first")
            }
            if w == "-" || w.isEmpty { throw ValidationError("\(option) needs a file name") }
        }
        if let a = writePcap, a == writePcapng { throw ValidationError("--write-pcap and --write-pcapng name the same file") }
        if !select.isEmpty && writePcap == nil && writePcapng == nil {
            throw ValidationError("--select chooses what --write-pcap or --write-pcapng writes; give one of them too")
        }
        if case .failure(let e) = PacketExport.Selection.parse(select) { throw ValidationError(e.message) }
        for item in select where item.hasPrefix("rule=") {
            let id = String(item.dropFirst(5))
            if RuleCatalog.description(of: id) == nil { throw ValidationError("--select: unknown rule '\(id)' (see 's2scope rules')") }
        }
        if threads < 0 || threads > 64 { throw ValidationError("--threads takes 0 (one per core) to 64") }
        if html == "-" && output == nil { throw ValidationError("--html - would mix the HTML page with the report on standard output; give -o FILE for the report") }
        if facts == "-" && html == "-" { throw ValidationError("--facts - and --html - both want standard output") }
        if facts == "" { throw ValidationError("--facts needs a file name (or '-')") }
        if sensor != nil && facts == nil { throw ValidationError("--sensor names the sensor in the facts; give --facts FILE too") }
    }

    func run() throws {
        var configuration = try analysis.makeConfiguration()
        configuration.threads = threads == 0 ? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) : threads
        // Directories become the captures in them, in the order of their first packet.
        let files: [String]
        do {
            let expansion = try CaptureFiles.expand(self.files, recursive: recursive)
            files = expansion.files
            if !quiet && expansion.skipped > 0 {
                fputs("s2scope: \(expansion.skipped) file\(expansion.skipped == 1 ? "" : "s") in the directories given \(expansion.skipped == 1 ? "is" : "are") not a pcap/pcapng capture and \(expansion.skipped == 1 ? "was" : "were") skipped\n", stderr)
            }
            if !quiet && expansion.directoriesNotEntered > 0 {
                fputs("s2scope: \(expansion.directoriesNotEntered) hidden or linked director\(expansion.directoriesNotEntered == 1 ? "y was" : "ies were") not entered\n", stderr)
            }
        } catch let e as CaptureError {
            throw FatalError(message: e.message)
        }
        if files.isEmpty { throw FatalError(message: "no pcap/pcapng capture in \(self.files.joined(separator: ", "))") }
        // pcapng files may carry their TLS key log (editcap --inject-secrets); libpcap skips it.
        for note in configuration.loadEmbeddedSecrets(paths: files) where !quiet { fputs("s2scope: \(note)\n", stderr) }
        // Every input is checked before any output (exit 2 for a bad one). Regular files are opened
        // again when their turn comes, so that a directory of thousands of captures does not hold
        // thousands of descriptors; standard input and pipes stay open (they cannot be read twice).
        var readers: [PcapFileReader?] = []
        var inputs: [FactInput] = []
        var total: Int64 = 0
        do {
            for (i, path) in files.enumerated() {
                let r = try Engine.open(path: path, inputIndex: i, filter: configuration.filter)
                total += r.fileSize ?? 0
                inputs.append(FactInput(path: r.path, format: r.format.rawValue, link_type: linkTypeName(r.linkType)))
                readers.append(path != "-" && isRegularFile(path) && files.count > 64 ? nil : r)
            }
        } catch let e as CaptureError {
            throw FatalError(message: e.message)
        }
        let engine = Engine(configuration: configuration)
        var factsFile: UnsafeMutablePointer<FILE>?
        if let facts {
            if facts == "-" {
                factsFile = stdout
            } else {
                guard let f = fopen(facts, "w") else { throw FatalError(message: "\(facts): cannot write (\(String(cString: strerror(errno))))") }
                factsFile = f
            }
            let out = factsFile!
            let writer = FactWriter { fputs($0, out) }
            writer.header(sensor: sensor ?? hostName(), inputs: inputs)
            engine.facts = writer
        }
        if configuration.threads > 1 && engine.parsingThreads < configuration.threads - 1 && !quiet {
            fputs("s2scope: could start only \(engine.parsingThreads) of \(configuration.threads - 1) parsing threads; going on with \(engine.parsingThreads + 1)\n", stderr)
        }
        let progress = Progress(enabled: !quiet && isatty(2) == 1, total: total)
        for i in readers.indices {
            let r: PcapFileReader
            if let open = readers[i] {
                r = open
            } else {
                do {
                    r = try Engine.open(path: files[i], inputIndex: i, filter: configuration.filter)
                } catch let e as CaptureError {
                    throw FatalError(message: "\(e.message) (it could be read a moment ago)")
                }
            }
            engine.read(r) { progress.update($0) }
            progress.finishInput(r)
            readers[i] = nil
        }
        progress.clear()
        let report = engine.finish()
        if let f = factsFile {
            if fflush(f) != 0 || ferror(f) != 0 { throw FatalError(message: "\(facts!): writing the facts failed") }
            if f != stdout { fclose(f) }
        }
        // With the facts on standard output the report is written only to a file (-o).
        if facts != "-" || output != nil {
            try writeReport(report, format: format, to: output, color: color, verbose: verbose)
        }
        if let html { try write(HTMLReport().render(report), to: html == "-" ? nil : html) }
        if writePcap != nil || writePcapng != nil {
            guard case .success(let selection) = PacketExport.Selection.parse(select) else { throw FatalError(message: "bad --select") }
            let chosen = PacketExport.connections(in: report, selection: selection)
            func plural(_ n: Int, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }
            do {
                if let writePcap {
                    let done = try PacketExport.write(chosen, paths: files, filter: configuration.filter, to: writePcap)
                    if !quiet {
                        fputs("s2scope: wrote \(plural(done.packets, "packet")) of \(plural(done.connections, "connection")) (\(done.linkType)) to \(writePcap)\n", stderr)
                    }
                }
                if let writePcapng {
                    let done = try PacketExport.writePcapng(chosen, report: report, paths: files, filter: configuration.filter, to: writePcapng)
                    if !quiet {
                        fputs("s2scope: wrote \(plural(done.packets, "packet")) of \(plural(done.connections, "connection")) (\(done.linkType.isEmpty ? "no input" : done.linkType)) with \(plural(done.comments, "comment")) to \(writePcapng)\n", stderr)
                    }
                }
            } catch let e as CaptureError {
                throw FatalError(message: e.message)
            }
        }
        if report.count(atLeast: analysis.failOn.severity) > 0 { throw ExitCode(1) }
    }
}

func hostName() -> String {
    var buf = [CChar](repeating: 0, count: 256)
    guard gethostname(&buf, buf.count - 1) == 0 else { return "sensor" }
    let name = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return name.isEmpty ? "sensor" : name
}

func isRegularFile(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
}

/// Writes to the file (or standard output) as `body` produces the text.
/// The report in the chosen format, to the file or standard output (`analyze` and `correlate`).
func writeReport(_ report: AnalysisReport, format: OutputFormat, to output: String?, color: Bool?, verbose: Bool) throws {
    switch format {
    case .json: try stream(to: output) { f in JSONReport.write(report) { fputs($0, f) } }
    case .jsonl: try stream(to: output) { f in JSONReport.writeLines(report) { fputs($0, f) } }
    case .text:
        let useColor = color ?? (output == nil && isatty(1) == 1 && getenv("NO_COLOR") == nil)
        try write(TextReport(color: useColor, verbose: verbose).render(report), to: output)
    }
}

func stream(to path: String?, _ body: (UnsafeMutablePointer<FILE>) -> Void) throws {
    if let path {
        guard let f = fopen(path, "w") else { throw FatalError(message: "\(path): cannot write (\(String(cString: strerror(errno))))") }
        defer { fclose(f) }
        body(f)
    } else {
        body(stdout)
        fflush(stdout)
    }
}

func write(_ text: String, to path: String?) throws {
    if let path {
        guard let f = fopen(path, "w") else { throw FatalError(message: "\(path): cannot write (\(String(cString: strerror(errno))))") }
        defer { fclose(f) }
        fputs(text, f)
    } else {
        fputs(text, stdout)
        fflush(stdout)
    }
}

/// Bytes read of total, MB/s and ETA on standard error, only when it is a terminal.
final class Progress {
    let enabled: Bool
    let total: Int64
    var done: Int64 = 0
    let start = now()
    var last = 0.0

    init(enabled: Bool, total: Int64) {
        self.enabled = enabled
        self.total = total
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    func update(_ r: PcapFileReader) {
        guard enabled else { return }
        let t = Progress.now()
        guard t - last > 0.25 else { return }
        last = t
        let pos = done + (r.filePosition ?? r.bytesRead)
        let rate = Double(pos) / max(t - start, 0.001)
        var line = "\r\u{1b}[K\(pos / 1_000_000) MB"
        if total > 0 {
            line += " of \(total / 1_000_000) MB (\(Int(Double(pos) * 100 / Double(total)))%)"
            line += ", ETA \(Int(Double(total - pos) / max(rate, 1))) s"
        }
        line += ", \(Int(rate / 1_000_000)) MB/s"
        fputs(line, stderr)
    }

    func finishInput(_ r: PcapFileReader) { done += r.fileSize ?? r.bytesRead }

    func clear() { if enabled { fputs("\r\u{1b}[K", stderr) } }
}
