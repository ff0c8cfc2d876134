import S2Model

/// How long and how much a TLS session may hold its protected records while it waits for its
/// secrets (a live run following a key log the servers are still writing).
public struct TLSHoldLimits: Sendable {
    /// Capture-time seconds a session waits for its secrets before its held records are
    /// given up as not decrypted. Kept well below the reaction timers (`--react-timeout`,
    /// 10 s by default): a held exchange is judged when it is released.
    public var seconds: Double = 5
    /// Bytes of records one session may hold.
    public var bytesPerSession = 1 << 20
    /// Bytes of records all sessions together may hold.
    public var totalBytes = 32 << 20
    /// Sessions whose secrets a following store keeps; beyond it the oldest are forgotten
    /// (a sensor that runs for days reads a key log that only grows).
    public var maxSessions = 65_536

    public init() {}
}

/// Counters of the records held for secrets that were not there yet.
public struct TLSHoldStatistics: Sendable, Equatable {
    /// Sessions that had to wait for their secrets.
    public var sessionsHeld = 0
    /// Sessions whose secrets arrived while they waited (their records were then decrypted).
    public var sessionsReleased = 0
    /// Sessions that gave up waiting (time, bytes, or the capture ended).
    public var sessionsDropped = 0
    /// Bytes of records given up without decryption.
    public var bytesDropped: UInt64 = 0
    /// Bytes held right now.
    public var bytesHeld = 0
    /// Sessions forgotten by the `maxSessions` bound.
    public var sessionsForgotten = 0

    public init() {}
}

/// The TLS secrets of one run, shared by its sessions: those read before the run (key log
/// files, pcapng Decryption Secrets Blocks) and, when `following`, those that arrive during
/// it. A session whose secrets are not here yet waits in the store, holding its records,
/// until `add` brings them or `expire` gives up.
///
/// Offline runs fill the store before the first packet and never change it afterwards, so
/// parse workers (`--threads`) may read it concurrently; only a following store (live runs,
/// one thread) changes while sessions read it.
public final class TLSKeyStore: @unchecked Sendable {
    public private(set) var keyLog: KeyLog
    /// More secrets may arrive during the run: sessions without theirs wait instead of failing.
    public let following: Bool
    public let limits: TLSHoldLimits
    public private(set) var statistics = TLSHoldStatistics()

    private var waiting: [[UInt8]: [TLSSession]] = [:]
    /// Client randoms in the order they were first added (following stores only), for the
    /// `maxSessions` bound; `head` is the oldest still counted.
    private var order: [[UInt8]] = []
    private var head = 0

    public init(keyLog: KeyLog = KeyLog(), following: Bool = false, limits: TLSHoldLimits = .init()) {
        self.keyLog = KeyLog()
        self.following = following
        self.limits = limits
        add(keyLog)
    }

    /// Reads what the followed key logs gained since they were last read (live runs). A session
    /// that misses its secrets asks it first: the servers write them before the records they
    /// protect leave, so they are usually in the file already, only not read yet.
    public var refill: (() -> KeyLog)?

    public var hasWaitingSessions: Bool { !waiting.isEmpty }

    /// Whether the secrets a session needs are here, after reading the followed key logs once
    /// more if they were not.
    func hasAllSecrets(clientRandom: [UInt8], tls13: Bool) -> Bool {
        if keyLog.hasAllSecrets(clientRandom: clientRandom, tls13: tls13) { return true }
        guard let refill else { return false }
        let more = refill()
        if !more.isEmpty { add(more) }
        return keyLog.hasAllSecrets(clientRandom: clientRandom, tls13: tls13)
    }
    public var waitingSessions: Int { waiting.values.reduce(0) { $0 + $1.count } }
    /// The client randoms of the sessions that wait, and since when (capture time).
    public var waits: [(clientRandom: [UInt8], since: Timestamp)] {
        waiting.flatMap { random, sessions in sessions.compactMap { s in s.waitingSince.map { (random, $0) } } }
    }

    /// Adds secrets; sessions that were waiting for them decrypt what they held, at once.
    /// Returns the number of sessions whose secrets were new.
    @discardableResult
    public func add(_ more: KeyLog) -> Int {
        var new = 0
        for random in more.entries.keys where !keyLog.hasSession(clientRandom: random) {
            new += 1
            if following { order.append(random) }
        }
        keyLog.merge(more)
        if following { forgetOldest() }
        guard !waiting.isEmpty else { return new }
        var ready: [TLSSession] = []
        for random in more.entries.keys {
            guard let sessions = waiting[random] else { continue }
            ready += sessions.filter(\.secretsAreComplete)
        }
        if !ready.isEmpty { release(ready) }
        return new
    }

    /// Decrypts what the sessions held, all of them together in capture order (a db:verify on
    /// one connection and the db:result it answers on another are judged in the order they
    /// travelled), then lets each end its wait, in the order the waits began.
    private func release(_ sessions: [TLSSession]) {
        let ordered = sessions.sorted { ($0.waitingSince ?? .zero, $0.connection) < ($1.waitingSince ?? .zero, $1.connection) }
        var lists = ordered.map { $0.beginRelease() }
        var next = [Int](repeating: 0, count: lists.count)
        func key(_ r: TLSSession.HeldRecord) -> (Timestamp, Int, Int) { (r.frame.time, r.frame.input, r.frame.number) }
        while true {
            // A k-way merge: each session's records stay in their own order.
            var pick = -1
            for k in lists.indices where next[k] < lists[k].count {
                if pick < 0 || key(lists[k][next[k]]) < key(lists[pick][next[pick]]) { pick = k }
            }
            guard pick >= 0 else { break }
            ordered[pick].replay(lists[pick][next[pick]])
            next[pick] += 1
        }
        lists.removeAll()
        for s in ordered { s.finishRelease() }
    }

    /// Gives up on the sessions that have waited longer than `limits.seconds` at capture time `now`.
    public func expire(now: Timestamp) {
        guard !waiting.isEmpty else { return }
        for s in waiting.values.flatMap({ $0 }) {
            if let since = s.waitingSince, now.secondsSince(since) > limits.seconds {
                s.giveUpWaiting(why: "no secrets for it arrived in the key log within \(formatSeconds(limits.seconds)) s")
            }
        }
    }

    /// Gives up on every waiting session (the capture ended).
    public func giveUpAll(why: String) {
        for s in waiting.values.flatMap({ $0 }) { s.giveUpWaiting(why: why) }
    }

    // MARK: - Sessions

    func wait(_ s: TLSSession, clientRandom: [UInt8]) {
        waiting[clientRandom, default: []].append(s)
        statistics.sessionsHeld += 1
    }

    func stopWaiting(_ s: TLSSession, clientRandom: [UInt8], released: Bool, heldBytes: Int) {
        if var list = waiting[clientRandom] {
            list.removeAll { $0 === s }
            waiting[clientRandom] = list.isEmpty ? nil : list
        }
        statistics.bytesHeld -= heldBytes
        if released {
            statistics.sessionsReleased += 1
        } else {
            statistics.sessionsDropped += 1
            statistics.bytesDropped += UInt64(heldBytes)
        }
    }

    /// Whether `bytes` more may be held by a session that holds `sessionBytes` already.
    func reserve(_ bytes: Int, sessionBytes: Int) -> Bool {
        guard sessionBytes + bytes <= limits.bytesPerSession, statistics.bytesHeld + bytes <= limits.totalBytes else { return false }
        statistics.bytesHeld += bytes
        return true
    }

    private func forgetOldest() {
        while keyLog.sessionCount > limits.maxSessions, head < order.count {
            let random = order[head]
            head += 1
            guard waiting[random] == nil else { continue }  // a session still needs it
            keyLog.remove(clientRandom: random)
            statistics.sessionsForgotten += 1
        }
        if head > 4096 && head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}

func formatSeconds(_ s: Double) -> String {
    s == s.rounded() ? String(Int(s)) : String(s)
}
