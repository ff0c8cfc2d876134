/// Where the metrics server listens, from `--metrics` (repeatable).
///
/// Accepted forms, each `HOST:PORT`:
/// - `127.0.0.1:9269`, `0.0.0.0:9269`: one IPv4 address (`0.0.0.0` = every IPv4 address);
/// - `[::1]:9269`, `[::]:9269`: one IPv6 address in brackets (`[::]` = every IPv6 address, and every
///   IPv4 address too through IPv4-mapped addresses, unless `0.0.0.0` on the same port is also given);
/// - `:9269` or `9269`: every address of both families (IPv4 alone where IPv6 is off);
/// - `localhost:9269`: 127.0.0.1 and ::1 (::1 only where IPv6 is on).
/// Host names other than `localhost` are not resolved: a sensor's listening address is a decision, not a
/// DNS answer.
public struct ListenAddress: Hashable, Sendable, CustomStringConvertible {
    public enum Family: Sendable { case inet, inet6 }

    /// A numeric address (no brackets).
    public var host: String
    public var port: Int
    public var family: Family
    /// Best effort: when it cannot be bound because its family is unavailable here (IPv6 turned
    /// off), the others are enough.
    public var optional: Bool

    public init(host: String, port: Int, family: Family, optional: Bool = false) {
        self.host = host
        self.port = port
        self.family = family
        self.optional = optional
    }

    public var isWildcard: Bool { host == "0.0.0.0" || host == "::" }

    /// `127.0.0.1:9269`, `[::1]:9269`.
    public var description: String { family == .inet6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The addresses one `--metrics` value stands for, or why it is not one.
    public static func parse(_ text: String) -> Result<[ListenAddress], ListenAddressError> {
        let s = text.trimmingWhitespace()
        let host: String
        let portText: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return .failure(.init("\(text): an IPv6 address needs its closing bracket, e.g. [::1]:9269")) }
            host = String(s[s.index(after: s.startIndex)..<close])
            let rest = s[s.index(after: close)...]
            guard rest.hasPrefix(":") else { return .failure(.init("\(text): a port must follow the bracketed address, e.g. [::1]:9269")) }
            portText = rest.dropFirst()
            guard isIPv6Literal(host) else { return .failure(.init("\(text): '\(host)' is not an IPv6 address")) }
        } else if let colon = s.lastIndex(of: ":") {
            host = String(s[..<colon])
            portText = s[s.index(after: colon)...]
            if host.contains(":") {
                return .failure(.init("\(text): write an IPv6 address in brackets, e.g. [\(host)]:\(portText)"))
            }
        } else {
            host = ""
            portText = Substring(s)
        }
        guard let port = Int(portText), (0...65_535).contains(port) else {
            return .failure(.init("\(text): expected ADDRESS:PORT with a port from 0 to 65535, e.g. 127.0.0.1:9269, [::1]:9269 or :9269"))
        }
        if host.isEmpty {
            return .success([ListenAddress(host: "::", port: port, family: .inet6, optional: true),
                             ListenAddress(host: "0.0.0.0", port: port, family: .inet, optional: true)])
        }
        if host == "localhost" {
            return .success([ListenAddress(host: "127.0.0.1", port: port, family: .inet),
                             ListenAddress(host: "::1", port: port, family: .inet6, optional: true)])
        }
        if s.hasPrefix("[") { return .success([ListenAddress(host: host, port: port, family: .inet6)]) }
        guard isIPv4Literal(host) else {
            return .failure(.init("\(text): '\(host)' is not a numeric address (use e.g. 127.0.0.1, [::1], 0.0.0.0, [::] or localhost)"))
        }
        return .success([ListenAddress(host: host, port: port, family: .inet)])
    }

    static func isIPv4Literal(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in
            !p.isEmpty && p.count <= 3 && p.allSatisfy { $0.isASCII && $0.isNumber } && Int(p)! <= 255
        }
    }

    static func isIPv6Literal(_ s: String) -> Bool {
        // Structure only (hex groups, one '::', an optional dotted IPv4 tail); the socket layer has
        // the last word when binding.
        guard !s.isEmpty, s.count <= 45, s.contains(":"), !s.contains(":::") else { return false }
        let doubleColons = s.components(separatedBy: "::").count - 1
        guard doubleColons <= 1 else { return false }
        var groups = s.split(separator: ":", omittingEmptySubsequences: true)
        var width = 0
        if let last = groups.last, last.contains(".") {
            guard isIPv4Literal(String(last)) else { return false }
            groups.removeLast()
            width = 2
        }
        for g in groups {
            guard g.count <= 4, g.allSatisfy({ $0.isHexDigit }) else { return false }
        }
        width += groups.count
        return doubleColons == 1 ? width <= 7 : width == 8
    }
}

public struct ListenAddressError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }

    fileprivate func components(separatedBy sep: String) -> [Substring] {
        var out: [Substring] = []
        var rest = Substring(self)
        while let r = rest.firstRange(of: sep) {
            out.append(rest[..<r.lowerBound])
            rest = rest[r.upperBound...]
        }
        out.append(rest)
        return out
    }
}
