import ArgumentParser
import S2Report

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `s2scope`: the command line. Each subcommand only turns options into configuration and hands
/// the work to S2Engine; exit codes follow ../shared/spec/REPORT.md.
@main
struct S2ScopeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "s2scope",
        abstract: "Watch XMPP server-to-server traffic (TCP 5269) and report where servers break the protocol.",
        discussion: """
            S2Scope reads captures (pcap, pcapng) or a live interface, reassembles every TCP stream on the \
            s2s port, parses both directions of each XML stream with expat, reconstructs every Server Dialback \
            exchange across connections (db:result on the originating connection, db:verify toward the \
            authoritative server, correlated by stream id, domains and key) and checks the rules of \
            RFC 3920 §8, RFC 6120 and XEP-0220/0185/0288. Each violation names its rule ID, the connection, \
            direction, frame number and the XML that shows it.

            Examples:
              s2scope analyze capture.pcapng
              s2scope analyze --format json --output report.json a.pcap b.pcap
              tcpdump -w - port 5269 | s2scope analyze -
              s2scope analyze --fail-on medium --disable STREAM-FEAT-2 capture.pcap   # in CI
              s2scope analyze --dialback-secret example.org=s3cr3t capture.pcap      # check keys (DB-AUTH-3)
              s2scope rules                 # list every rule
              s2scope rules DB-CORR-6       # explain one rule

            Exit status: 0 analysed, no violation at or above --fail-on; 1 analysed, at least one such \
            violation; 2 could not analyse (bad arguments, unreadable or non-capture input).
            """,
        version: AnalysisReport.toolVersion,
        subcommands: [Analyze.self, Correlate.self, Live.self, Rules.self],
        defaultSubcommand: nil)

    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let e as ExitCode {
            Glibc.exit(e.rawValue)
        } catch let e as FatalError {
            fputs("s2scope: \(e.message)\n", stderr)
            Glibc.exit(2)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            fputs("s2scope: \(fullMessage(for: error))\n", stderr)
            fputs("Run 's2scope --help' for usage.\n", stderr)
            Glibc.exit(2)
        }
    }
}

/// An error that stops the run with exit status 2 and a one-line message.
struct FatalError: Error {
    var message: String
}
