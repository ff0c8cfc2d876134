#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Secrets from an NSS key log (`SSLKEYLOGFILE`), as OpenSSL, NSS, GnuTLS and Python's
/// `ssl.SSLContext.keylog_filename` write them: one `LABEL <client_random hex> <secret hex>`
/// per line, `#` comments. TLS 1.3 uses `CLIENT_HANDSHAKE_TRAFFIC_SECRET`,
/// `SERVER_HANDSHAKE_TRAFFIC_SECRET`, `CLIENT_TRAFFIC_SECRET_0`, `SERVER_TRAFFIC_SECRET_0`;
/// TLS 1.2 uses `CLIENT_RANDOM <client_random> <master_secret>`.
public struct KeyLog: Sendable {
    /// label → secret, per client random.
    public private(set) var entries: [[UInt8]: [String: [UInt8]]] = [:]
    /// Lines that were neither comments nor `LABEL hex hex`.
    public private(set) var malformedLines = 0

    public init() {}

    /// Parses the text of a key log.
    public init(text: String) {
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) { add(line: line) }
    }

    /// Reads a key log file.
    public init(path: String) throws(KeyLogError) {
        guard let f = fopen(path, "r") else {
            throw KeyLogError(message: "\(path): cannot read the key log (\(String(cString: strerror(errno))))")
        }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var cap = 0
        while getline(&line, &cap, f) > 0 {
            let s = String(cString: line!)
            add(line: s.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).first ?? "")
        }
        free(line)
        if entries.isEmpty {
            throw KeyLogError(message: "\(path): no TLS secrets found (expected NSS key log lines such as 'CLIENT_RANDOM <hex> <hex>' or 'CLIENT_TRAFFIC_SECRET_0 <hex> <hex>')")
        }
    }

    public mutating func add(line: Substring) {
        let t = line.drop(while: { $0 == " " || $0 == "\t" })
        if t.isEmpty || t.hasPrefix("#") { return }
        let parts = t.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard parts.count == 3, let random = KeyLog.hex(parts[1]), random.count == 32,
              let secret = KeyLog.hex(parts[2]), !secret.isEmpty else {
            malformedLines += 1
            return
        }
        entries[random, default: [:]][String(parts[0])] = secret
    }

    /// Adds every secret of `other` (a later line for the same session and label wins).
    public mutating func merge(_ other: KeyLog) {
        for (random, labels) in other.entries { entries[random, default: [:]].merge(labels) { _, new in new } }
        malformedLines += other.malformedLines
    }

    /// Removes one session's secrets (bounded key stores forget the oldest sessions).
    mutating func remove(clientRandom: [UInt8]) { entries[clientRandom] = nil }

    public var isEmpty: Bool { entries.isEmpty }
    public var sessionCount: Int { entries.count }

    /// The TLS 1.3 secrets S2Scope needs for a whole session (handshake and application data).
    public static let tls13Labels = ["CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                                     "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"]

    /// Whether every secret a session needs is here: the four TLS 1.3 traffic secrets, or the
    /// TLS 1.2 master secret (`CLIENT_RANDOM`).
    public func hasAllSecrets(clientRandom: [UInt8], tls13: Bool) -> Bool {
        guard let labels = entries[clientRandom] else { return false }
        return tls13 ? KeyLog.tls13Labels.allSatisfy { labels[$0] != nil } : labels["CLIENT_RANDOM"] != nil
    }

    public func secret(_ label: String, clientRandom: [UInt8]) -> [UInt8]? { entries[clientRandom]?[label] }
    public func hasSession(clientRandom: [UInt8]) -> Bool { entries[clientRandom] != nil }

    static func hex<S: StringProtocol>(_ s: S) -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(s.utf8.count / 2)
        var high: UInt8? = nil
        for c in s.utf8 {
            guard let n = nibble(c) else { return nil }
            if let h = high {
                out.append(h << 4 | n)
                high = nil
            } else {
                high = n
            }
        }
        return high == nil ? out : nil  // an odd number of digits is not hex bytes
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        case 65...70: return c - 55
        default: return nil
        }
    }
}

public struct KeyLogError: Error, Sendable {
    public var message: String
}

func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0xf)])
    }
    return String(decoding: out, as: UTF8.self)
}
