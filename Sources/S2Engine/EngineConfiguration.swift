import S2Capture
import S2Reassembly
import S2Rules
import S2TLS
import S2XMPP

/// Everything that shapes one analysis run.
public struct EngineConfiguration: Sendable {
    /// TCP ports that carry s2s traffic (a segment is analysed when either port matches).
    public var ports: Set<UInt16> = [5269]
    /// A BPF expression applied to every frame (frames it rejects still count for numbering).
    public var filter: String?
    public var reassembly = ReassemblyLimits()
    public var xml = XMLLimits()
    public var rules = RuleConfiguration()
    /// Domains hosted at each address, from the user (`--host DOMAIN=ADDRESS`).
    public var hosts: [String: Set<String>] = [:]
    /// Anomalies kept for the report (all are counted).
    public var maxAnomaliesKept = 10_000
    /// Keep closed connections and settled exchanges for the final report (offline). Live runs
    /// stream them out and forget them, so memory stays flat over days.
    public var retainHistory = true
    /// TLS secrets (`--keylog`): traffic after STARTTLS is decrypted and analysed as the
    /// restarted stream. Without it the TLS record layer is still parsed for its parameters.
    public var keyLog: KeyLog?
    /// The key log is still being written (live runs): a TLS session whose secrets are not in
    /// it yet holds its records (within `tlsHold`) until they arrive through `Engine.addSecrets`.
    public var followsKeyLog = false
    public var tlsHold = TLSHoldLimits()
    /// Threads for an offline run: with more than one, XML parsing runs on `threads − 1`
    /// workers beside the thread that reads, reassembles and judges (same verdicts).
    public var threads = 1
    /// With `threads` > 1: the parse work handed to the workers at once (payload bytes, steps).
    /// The report does not depend on it. Small rounds keep a round's events in the cores' caches
    /// until they are judged and freed: on the 100 MB benchmark capture 32 KiB rounds beat 1 MiB
    /// rounds in 7 of 7 alternating runs (by 0.2–1.0 s of ~2 s), on 1 GB by 8 s in the pair measured.
    public var parallelRound = (bytes: 32 << 10, steps: 512)
    /// With `threads` > 1: how many rounds the workers may be ahead of the round being applied.
    /// One makes the two sides wait for each other whenever a round is longer on one side than the
    /// other; measured on the 100 MB benchmark capture with `--threads 2` (six alternating runs
    /// each): the reading thread waited 116 ms per run at depth 1, 69 ms at depth 2, and the run
    /// took 1.32 s and 1.12 s (medians). Deeper (4, 8) waited less but ran slower: the rounds'
    /// events leave the caches before they are applied. The report does not depend on it.
    public var parallelDepth = 2
    /// With `threads` > 1, the share of new connections (of 64) that the reading thread parses
    /// itself. Nil: as much as keeps it from waiting for the workers, adjusted after every round.
    /// A fixed share is for tests (the report does not depend on it).
    public var parallelInlineShare: Int?
    /// With more XMPP connections open than this, a stream that waits after its header frees its
    /// expat parser until its next byte (`XMPPStreamDecoder.parksWhenIdle`): at most this many
    /// connections keep a parser they are not using (each charged to the memory budget). The
    /// benchmark captures peak at 347 open connections. Parking costs about 55,000 instructions
    /// per stream that goes on, 4.7 % of a run on the 8.7 MB benchmark capture. 0: always park,
    /// as before this setting. The report does not depend on it (tests compare on every fixture).
    public var parkIdleParsersAbove = 1_000
    /// Budget in bytes for the analysis state (`--max-memory`): the estimate of `Engine.estimatedStateBytes`.
    /// Beyond it the least recently active connections are evicted; nil: no budget.
    public var maxMemory: Int? = EngineConfiguration.defaultMaxMemoryMiB << 20
    /// 512 MiB: a small sensor (a 1–2 GiB VM) keeps room for the process itself, the report's history
    /// and the allocator's slack; about 45,000 XMPP connections at once at the measured cost each.
    public static let defaultMaxMemoryMiB = 512

    public init() {}

    /// Reads an NSS key log into `keyLog` (merged with the secrets already there); returns
    /// what went wrong, if anything.
    public mutating func loadKeyLog(path: String) -> String? {
        do {
            let log = try KeyLog(path: path)
            if keyLog == nil { keyLog = log } else { keyLog!.merge(log) }
            return nil
        } catch {
            return error.message
        }
    }

    /// Merges the TLS key logs embedded in pcapng Decryption Secrets Blocks of the capture files
    /// into `keyLog` (which they create when no `--keylog` was given). Returns what the operator
    /// should know: how many secrets each file carried, damaged blocks, other secret types.
    public mutating func loadEmbeddedSecrets(paths: [String]) -> [String] {
        var notes: [String] = []
        for path in paths {
            let r = PcapngSecrets.read(path: path)
            notes += r.notes
            var found = KeyLog()
            var blocks = 0
            for b in r.blocks {
                guard b.secretsType == PcapngSecrets.tlsKeyLog else {
                    notes.append("\(path): a decryption secrets block of type 0x\(String(b.secretsType, radix: 16)) (not a TLS key log) at offset \(b.offset) was ignored")
                    continue
                }
                blocks += 1
                found.merge(KeyLog(text: String(decoding: b.data, as: UTF8.self)))
            }
            guard blocks > 0 else { continue }
            notes.append("\(path): TLS secrets of \(found.sessionCount) session\(found.sessionCount == 1 ? "" : "s") read from \(blocks) decryption secrets block\(blocks == 1 ? "" : "s")")
            if keyLog == nil { keyLog = found } else { keyLog!.merge(found) }
        }
        return notes
    }
}
